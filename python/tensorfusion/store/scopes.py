"""The kinds the store holds and whether each lives in a namespace.

Our own kinds take their scope from `api.kinds`, where each is declared once; the Kubernetes
kinds the engine reads or writes are listed here. A kind outside this table is refused, as the
API server refuses a resource it does not serve, because the scope decides how a name is keyed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from tensorfusion.api.field_errors import type_name
from tensorfusion.api.kinds import KINDS
from tensorfusion.errors import ConfigError
from tensorfusion.store.arguments import checked_version

Scope = Literal["Cluster", "Namespaced"]

_KUBERNETES_KINDS: dict[str, Scope] = {
    "Pod": "Namespaced",
    "Lease": "Namespaced",
    "ConfigMap": "Namespaced",
    "Secret": "Namespaced",
    "Service": "Namespaced",
    "Event": "Namespaced",
    "Deployment": "Namespaced",
    "ReplicaSet": "Namespaced",
    "StatefulSet": "Namespaced",
    "DaemonSet": "Namespaced",
    "ControllerRevision": "Namespaced",
    "Job": "Namespaced",
    "Node": "Cluster",
    "Namespace": "Cluster",
    "PriorityClass": "Cluster",
    "NodeClaim": "Cluster",
}

KIND_SCOPES: Mapping[str, Scope] = {
    **_KUBERNETES_KINDS,
    **{info.kind: info.scope for info in KINDS},
}


def checked_kind(kind: object, field: str = "kind") -> str:
    """`kind` if the store holds it; a missing or unknown kind is a ConfigError naming
    `field`."""
    if not isinstance(kind, str) or not kind:
        raise ConfigError(field, f"must be a non-empty string naming a kind, got {kind!r}")
    if kind not in KIND_SCOPES:
        known = ", ".join(sorted(KIND_SCOPES))
        raise ConfigError(field, f"unknown kind {kind!r}; the store holds: {known}")
    return kind


def is_namespaced(kind: str) -> bool:
    """Whether objects of a kind that passed `checked_kind` live in a namespace."""
    return KIND_SCOPES[kind] == "Namespaced"


def checked_kinds(kinds: object) -> tuple[str, ...] | None:
    """A watch's kind filter: None for every kind, else a collection of known kinds."""
    if kinds is None:
        return None
    if isinstance(kinds, str) or not isinstance(kinds, Collection):
        raise ConfigError("kinds", f"must be a collection of kinds such as ['Pod'], got {kinds!r}")
    return tuple(checked_kind(kind, "kinds") for kind in kinds)


def checked_versions(versions: object) -> dict[str, int]:
    """A version per kind, where each kind's changes are followed from."""
    if not isinstance(versions, Mapping):
        raise ConfigError("versions", f"must map kinds to versions, got {type_name(versions)}")
    return {
        checked_kind(kind, "versions"): checked_version(f"versions[{kind}]", version)
        for kind, version in versions.items()
    }
