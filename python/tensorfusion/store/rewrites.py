"""Checks every backend makes of an object it is about to write, beyond those of
`objects.checked_object`: a new object carries no resourceVersion, and a rewrite of a stored
one (a patch's or a merge's result) keeps its kind, namespace and name."""

from __future__ import annotations

from tensorfusion.errors import ConfigError
from tensorfusion.store.keys import ObjectKey
from tensorfusion.store.objects import JsonObject, checked_object


def refuse_version_on_create(new: JsonObject) -> None:
    """A ConfigError if the checked object `new`, about to be created, has a resourceVersion."""
    if given := new["metadata"].get("resourceVersion"):
        raise ConfigError(
            "metadata.resourceVersion",
            f"must not be set when creating an object (got {given!r})",
        )


def checked_rewrite(key: ObjectKey, obj: object, source: str) -> JsonObject:
    """`obj`, made by `source` ("a patch", "a merge") from the object stored under `key`,
    checked; it may not move the object to another key."""
    new_key, new = checked_object(obj)
    for field, before, after in (
        ("kind", key.kind, new_key.kind),
        ("metadata.namespace", key.namespace, new_key.namespace),
        ("metadata.name", key.name, new_key.name),
    ):
        if before != after:
            raise ConfigError(field, f"{source} cannot change it ({before!r} to {after!r})")
    return new
