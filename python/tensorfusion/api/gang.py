"""Gang scheduling: a workload's workers are placed all together or not at all."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tensorfusion.api.base import ApiModel


class GangScheduling(ApiModel):
    min_members: int | None = Field(default=None, ge=0, alias="minMembers")
    mode: Literal["Strict"] = "Strict"
    timeout: str | None = None


class GangStatus(ApiModel):
    """Upstream's gang scheduler's progress, kept as reported."""

    phase: Literal["Pending", "Waiting", "Scheduling", "Running", "TimedOut", "Failed"] = "Pending"
    group_key: str | None = Field(default=None, alias="groupKey")
    desired_members: int | None = Field(default=None, alias="desiredMembers")
    waiting_members: int | None = Field(default=None, alias="waitingMembers")
    scheduled_members: int | None = Field(default=None, alias="scheduledMembers")
    ready_members: int | None = Field(default=None, alias="readyMembers")
    reason: str | None = None
    message: str | None = None
    backoff_until: str | None = Field(default=None, alias="backoffUntil")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
