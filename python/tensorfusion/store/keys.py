"""The identity of a stored object (kind, namespace, name) and how call arguments map to it."""

from __future__ import annotations

from dataclasses import dataclass

from tensorfusion.api.field_errors import type_name
from tensorfusion.api.names import dns_label_problem
from tensorfusion.errors import ConfigError
from tensorfusion.store.scopes import checked_kind, is_namespaced

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class ObjectKey:
    kind: str
    namespace: str  # "" for a cluster-scoped kind, which keeps the key a plain unique triple
    name: str

    def columns(self) -> tuple[str, str, str]:
        """The key as the (kind, namespace, name) columns of a table row."""
        return (self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def scoped_namespace(kind: str, namespace: object, field: str) -> str:
    """The namespace an object of `kind` is keyed under: "default" when a namespaced kind is
    given none, "" for a cluster-scoped kind, which must not be given one."""
    if namespace is not None and not isinstance(namespace, str):
        raise ConfigError(field, f"must be a string, got {type_name(namespace)}")
    if not is_namespaced(kind):
        if namespace:
            raise ConfigError(
                field, f"{kind} is cluster-scoped and takes no namespace (got {namespace!r})"
            )
        return ""
    if not namespace:
        return DEFAULT_NAMESPACE
    if problem := dns_label_problem(namespace):
        raise ConfigError(field, problem)
    return namespace


def list_namespace(kind: str, namespace: object) -> str | None:
    """The namespace a list of a checked kind is limited to, or None for all of them (and for
    cluster-scoped kinds, which must not be given one)."""
    if namespace is None or namespace == "":
        return None
    return scoped_namespace(kind, namespace, "namespace")


def lookup_key(kind: object, name: object, namespace: object = None) -> ObjectKey:
    """The key get/patch/delete address; the name is not held to the naming grammar here, since
    an object with a bad name cannot exist and the caller then gets NotFoundError."""
    kind = checked_kind(kind)
    if not isinstance(name, str) or not name:
        raise ConfigError("name", f"must be a non-empty string, got {name!r}")
    return ObjectKey(kind, scoped_namespace(kind, namespace, "namespace"), name)
