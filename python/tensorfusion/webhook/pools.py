"""The pool a converted pod goes to, resolved from the cluster's GPUPool objects as the
scheduler resolves it, with that pool's default QoS, its patches to the pod, and whether it
lets VRAM be paged out to disk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.agent.vram_tiers import pool_expansion
from tensorfusion.api.common import QOS_LEVELS, QoSLevel
from tensorfusion.api.gpu_links import is_default_pool, text_at
from tensorfusion.scheduler.pools import PoolDirectory, PoolInfo
from tensorfusion.webhook.pool_patches import PoolPatches, pool_patches


@dataclass(frozen=True)
class ChosenPool:
    name: str
    default_qos: QoSLevel | None
    """`spec.qosConfig.defaultQoS`, when it names a QoS level."""
    patches: PoolPatches = field(default_factory=PoolPatches)
    pages_to_disk: bool = False
    """`vramExpandToHostDisk` > 0: the pod's shim needs a spill directory."""


def choose_pool(name: str | None, pools: Iterable[Mapping[str, Any]]) -> ChosenPool | str:
    """The pool named (or, for None, the default one); else a message saying why none is."""
    objects = {
        pool_name: pool
        for pool in pools
        if (pool_name := text_at(pool, "metadata", "name")) is not None
    }
    directory = PoolDirectory(
        {
            pool_name: PoolInfo(pool_name, is_default=is_default_pool(pool))
            for pool_name, pool in objects.items()
        }
    )
    chosen = directory.resolve(name)
    if isinstance(chosen, str):
        return chosen
    pool = objects[chosen.name]
    patches = pool_patches(pool)
    if isinstance(patches, str):
        return patches
    default_qos = text_at(pool, "spec", "qosConfig", "defaultQoS")
    return ChosenPool(
        chosen.name,
        next((q for q in QOS_LEVELS if q == default_qos), None),
        patches,
        pages_to_disk=pool_expansion(pool).disk_percent > 0,
    )
