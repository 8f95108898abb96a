"""Defragmentation: on a schedule, move workers off lightly used nodes so they can be freed."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel


class Defrag(ApiModel):
    enabled: bool = False
    schedule: str = Field(default="0 3 * * *", pattern=r"^[^=]+$")
    """A cron schedule, in `timezone`."""
    timezone: str
    max_duration: str = Field(default="2h", alias="maxDuration")
    utilization_threshold_percent: int = Field(
        default=40, ge=0, le=100, alias="utilizationThresholdPercent"
    )
    """Nodes used below this percent are emptied."""
    source_node_marker_ttl: str = Field(default="30m", alias="sourceNodeMarkerTTL")
    evicted_pod_marker_ttl: str = Field(default="never", alias="evictedPodMarkerTTL")
