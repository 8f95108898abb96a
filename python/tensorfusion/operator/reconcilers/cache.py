"""What the reconcilers read: a copy of the watched kinds kept current from the store's
watch (an informer's cache), indexed by what each object hangs off, so that a reconcile
reads its object and what it owns without listing the cluster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL, gpu_node_name, text_at
from tensorfusion.errors import NotServedError
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.objects import JsonObject


def owner_name(obj: Mapping[str, Any], kind: str) -> str | None:
    """The name of the object's owner of `kind` (its first such ownerReference)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == kind:
            name = ref.get("name")
            return name if isinstance(name, str) else None
    return None


_PARENTS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "GPU": gpu_node_name,
    "Pod": lambda pod: text_at(pod, "spec", "nodeName") or "",
    "GPUNode": lambda gpu_node: text_at(gpu_node, "metadata", "labels", OWNER_LABEL),
    "GPUPool": lambda pool: owner_name(pool, "TensorFusionCluster"),
    "NodeClaim": lambda claim: text_at(claim, "metadata", "labels", POOL_LABEL),
    "GPUNodeClaim": lambda claim: text_at(claim, "metadata", "labels", POOL_LABEL),
}
"""Per kind, the name it hangs off: a GPU's and a pod's node ("" for a pod not yet bound), a
GPUNode's pool, a pool's cluster, a provisioned claim's pool."""
WATCHED_KINDS = (
    "TensorFusionCluster",
    "GPUPool",
    "Node",
    "GPUNode",
    "GPU",
    "Pod",
    "GPUNodeClaim",
    "ControllerRevision",
    "DaemonSet",
    "NodeClaim",
)
OPTIONAL_KINDS = frozenset({"NodeClaim"})
"""Kinds whose API may not be served (Karpenter's NodeClaim where Karpenter is not installed):
the cache holds none of them then, and nothing that needs them is done."""


def list_into(cache: ObjectCache, store: ClusterStore, kind: str) -> int | None:
    """Fill the cache with everything of `kind` from a fresh list; returns the list's version
    to follow from, or None for an optional kind whose API is not served (none held then)."""
    try:
        objects, version = store.list_with_version(kind)
    except NotServedError:
        if kind not in OPTIONAL_KINDS:
            raise
        objects, version = [], None
    cache.replace(kind, objects)
    return version


def _version(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


class ObjectCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], JsonObject]] = defaultdict(dict)
        self._children: dict[str, dict[str, set[tuple[str, str]]]] = defaultdict(
            lambda: defaultdict(set)
        )

    def get(self, kind: str, name: str, namespace: str = "") -> JsonObject | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> list[JsonObject]:
        return [self._objects[kind][key] for key in sorted(self._objects[kind])]

    def children(self, kind: str, parent: str) -> list[JsonObject]:
        """Objects of `kind` hanging off `parent` (see `_PARENTS`), ordered by name."""
        keys = sorted(self._children[kind].get(parent, ()))
        return [self._objects[kind][key] for key in keys]

    def replace(self, kind: str, objects: list[JsonObject]) -> None:
        """Everything of `kind`, from a fresh list."""
        self._objects[kind].clear()
        self._children[kind].clear()
        for obj in objects:
            self.put(obj)

    def put(self, obj: JsonObject) -> JsonObject | None:
        """Store an object unless the cache holds a newer version of it; returns the version
        it replaced (None if it was new, or if `obj` was older and dropped)."""
        kind, key = obj["kind"], _key(obj)
        old = self._objects[kind].get(key)
        if old is not None and _version(old) > _version(obj):
            return None
        if old is not None:
            self._unindex(kind, key, old)
        self._objects[kind][key] = obj
        parent = _PARENTS.get(kind, _none)(obj)
        if parent is not None:
            self._children[kind][parent].add(key)
        return old

    def remove(self, obj: JsonObject) -> JsonObject | None:
        """Drop an object; returns the version the cache held, if any."""
        kind, key = obj["kind"], _key(obj)
        old = self._objects[kind].pop(key, None)
        if old is not None:
            self._unindex(kind, key, old)
        return old

    def _unindex(self, kind: str, key: tuple[str, str], old: JsonObject) -> None:
        parent = _PARENTS.get(kind, _none)(old)
        if parent is not None:
            self._children[kind][parent].discard(key)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace") or "", metadata["name"]


def _none(_: Mapping[str, Any]) -> None:
    return None
