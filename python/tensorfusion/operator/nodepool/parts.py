"""The parts of node-pool upkeep, in the order they run for a pool: capacity first (nodes
to add), then compaction (nodes to release), then the agents' rolling update."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from tensorfusion.operator.nodepool.compaction import COMPACTION
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.plan import PartPlan
from tensorfusion.operator.nodepool.provisioning import PROVISIONING
from tensorfusion.operator.nodepool.rollout import ROLLOUT
from tensorfusion.operator.nodepool.view import PoolView

if TYPE_CHECKING:
    from tensorfusion.operator.reconcilers.context import Context


class PoolPart(Protocol):
    name: str
    condition_types: tuple[str, ...]
    """The pool condition types this part owns (and alone writes)."""

    def plan(self, view: PoolView, now: datetime, config: NodePoolConfig) -> PartPlan:
        """What the part would do now; reads only `view`, so the API can show it."""
        ...

    def apply(self, ctx: Context, view: PoolView, plan: PartPlan) -> None:
        """Carry out the plan's due actions (writes through `ctx`, Events included)."""
        ...


PARTS: tuple[PoolPart, ...] = (PROVISIONING, COMPACTION, ROLLOUT)
