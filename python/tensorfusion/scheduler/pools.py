"""The pools the scheduler places into: each pool's oversubscription (the virtual capacity
of its GPUs) and placement mode, and which pool a pod without `gpupool` goes to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tensorfusion.api.annotations import GPU_POOL
from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.scheduling_template import DEFAULT_PLACEMENT_MODE, PlacementMode


@dataclass(frozen=True)
class PoolInfo:
    name: str
    oversubscription: Oversubscription = field(default_factory=Oversubscription)
    placement: PlacementMode = DEFAULT_PLACEMENT_MODE
    is_default: bool = False
    template: str | None = None
    """The SchedulingConfigTemplate the pool names; None for the default placement."""


@dataclass(frozen=True)
class PoolDirectory:
    pools: Mapping[str, PoolInfo]

    def default(self) -> PoolInfo | None:
        """The pool marked default, else the only pool."""
        marked = [pool for pool in self.pools.values() if pool.is_default]
        if marked:
            return marked[0]
        if len(self.pools) == 1:
            return next(iter(self.pools.values()))
        return None

    def resolve(self, name: str | None) -> PoolInfo | str:
        """The pool a pod asks for (or the default); a message naming the annotation if
        there is none."""
        if name is None:
            default = self.default()
            if default is not None:
                return default
            if not self.pools:
                return "no GPU pool exists in the cluster"
            return (
                f"{GPU_POOL}: not set and no pool is the default "
                f"(pools: {', '.join(sorted(self.pools))}); name one"
            )
        pool = self.pools.get(name)
        if pool is None:
            known = ", ".join(sorted(self.pools)) or "none"
            return f"{GPU_POOL}: pool {name!r} does not exist (pools: {known})"
        return pool
