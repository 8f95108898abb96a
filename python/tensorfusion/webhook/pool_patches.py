"""A GPU pool's own additions to the pods it takes: `spec.componentConfig.client.patchToPod`
merged into the pod and `patchToContainer` into each container the shim is injected into.

They merge as a strategic merge patch does for the parts of a pod a pool changes: objects
recursively, a null removes the key, a list of named items (containers, env, volumes,
volumeMounts, ports) merges item by item on the name, any other list is replaced."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from tensorfusion.api.gpu_links import text_at

PATCH_FIELDS: Final = ("patchToPod", "patchToContainer")


@dataclass(frozen=True)
class PoolPatches:
    to_pod: Mapping[str, Any] | None = None
    to_container: Mapping[str, Any] | None = None


def pool_patches(pool: Mapping[str, Any]) -> PoolPatches | str:
    """The pool's patches, or a message naming the one that is not an object."""
    client = (((pool.get("spec") or {}).get("componentConfig") or {}).get("client")) or {}
    found: dict[str, Mapping[str, Any] | None] = {}
    for name in PATCH_FIELDS:
        patch = client.get(name) if isinstance(client, Mapping) else None
        if patch is not None and not isinstance(patch, Mapping):
            pool_name = text_at(pool, "metadata", "name")
            return (
                f"GPUPool/{pool_name} spec.componentConfig.client.{name}: must be an object "
                f"merged into the pod, got {type(patch).__name__}"
            )
        found[name] = patch
    return PoolPatches(found["patchToPod"], found["patchToContainer"])


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items)


def _merge_lists(current: list[Any], patch: list[Any]) -> list[Any]:
    if not (current and patch and _named(current) and _named(patch)):
        return copy.deepcopy(patch)
    merged = list(current)
    index = {item["name"]: position for position, item in enumerate(merged)}
    for item in patch:
        if item["name"] in index:
            position = index[item["name"]]
            merged[position] = merged_into(merged[position], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def merged_into(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`target` with `patch` merged in (neither is changed)."""
    result = dict(target)
    for key, value in patch.items():
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(current, Mapping):
            result[key] = merged_into(current, value)
        elif isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_lists(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def apply_pool_patches(
    pod: MutableMapping[str, Any], patches: PoolPatches, inject: tuple[str, ...]
) -> None:
    """Merges the pool's patches into `pod` (changed in place)."""
    if patches.to_pod:
        merged = merged_into(pod, patches.to_pod)
        pod.clear()
        pod.update(merged)
    if patches.to_container:
        spec = pod.get("spec") or {}
        spec["containers"] = [
            merged_into(container, patches.to_container)
            if container.get("name") in inject
            else container
            for container in spec.get("containers") or ()
        ]
