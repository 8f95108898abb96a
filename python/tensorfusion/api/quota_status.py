"""What a GPUResourceQuota's namespace uses, as upstream's quota controller reports it."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import Condition, GPUResource


class QuotaUsage(ApiModel):
    requests: GPUResource | None = None
    limits: GPUResource | None = None
    workers: int | None = None


class PercentPair(ApiModel):
    tflops: str | None = None
    vram: str | None = None


class AvailablePercent(ApiModel):
    """What is left of each bound, in percent (kept as upstream writes it)."""

    requests: PercentPair | None = None
    limits: PercentPair | None = None
    workers: str | None = None


class GPUResourceQuotaStatus(ApiModel):
    used: QuotaUsage | None = None
    available_percent: AvailablePercent | None = Field(default=None, alias="availablePercent")
    conditions: list[Condition] = Field(default_factory=list)
    last_update_time: str | None = Field(default=None, alias="lastUpdateTime")
