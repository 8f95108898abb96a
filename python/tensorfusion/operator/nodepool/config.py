"""What the node-pool reconciler is configured with beyond the objects it reads: where the
node agents' DaemonSet is, how to reach each cloud vendor, and the zone maintenance windows
are read in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from tensorfusion.operator.nodepool.cloud import CloudProvider

CloudFactory = Callable[[Mapping[str, Any]], CloudProvider]
"""Builds a vendor's provider from a pool's `computingVendor` (its type, authType, params)."""


DEFAULT_NAMESPACE = "tensor-fusion-sys"
"""The chart's namespace: the controller's and its agents'."""
DEFAULT_AGENT_DAEMONSET = "tensor-fusion-agent"


@dataclass(frozen=True)
class NodePoolConfig:
    agent_namespace: str = DEFAULT_NAMESPACE
    agent_daemonset: str = DEFAULT_AGENT_DAEMONSET
    """The node agents' DaemonSet (the chart's `<release>-agent`), updated with OnDelete so
    that the rolling update decides when each node's agent restarts."""
    time_zone: tzinfo = UTC
    """Maintenance windows' cron schedules are read in this zone."""
    clouds: Mapping[str, CloudFactory] | None = None
    """Per `computingVendor.type`, its provider; None: the built-in ones (AWS via boto3)."""
