"""What a node-pool part decides for a pool at one moment: the actions it will take (now or
at a later time, or never without a person, as a proposal), the condition it puts on the
pool, and when to look again. `GET /api/pools/{name}/plan` returns these as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tensorfusion.store.timestamps import rfc3339

ActionState = Literal["due", "waiting", "held", "proposed"]
"""due: carried out in this pass; waiting: at `at`; held: blocked (the condition says why);
proposed: never carried out automatically (a plan for a person, such as defragmentation)."""


@dataclass(frozen=True)
class Action:
    kind: str
    """What is done: "update-agents", "compact-node", "create-nodeclaim", "launch-instance",
    "move-worker", ..."""
    target: str
    """What it is done to: a node, a claim, a worker."""
    reason: str
    state: ActionState = "due"
    at: datetime | None = None
    """When a waiting action becomes due."""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "target": self.target,
            "state": self.state,
            "reason": self.reason,
        }
        if self.at is not None:
            body["at"] = rfc3339(self.at)
        if self.detail:
            body["detail"] = dict(self.detail)
        return body


@dataclass(frozen=True)
class PoolCondition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class PartPlan:
    part: str
    actions: tuple[Action, ...] = ()
    conditions: tuple[PoolCondition, ...] = ()
    wake_at: datetime | None = None
    """When this part's plan may change without any object changing (a window opens, an
    interval ends); the reconciler looks again then."""

    def due(self) -> list[Action]:
        return [action for action in self.actions if action.state == "due"]


@dataclass(frozen=True)
class PoolPlan:
    pool: str
    at: datetime
    parts: Sequence[PartPlan]

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "at": rfc3339(self.at),
            "actions": [
                {"part": part.part, **action.to_json()}
                for part in self.parts
                for action in part.actions
            ],
            "conditions": [c.to_json() for part in self.parts for c in part.conditions],
        }
