"""The node agent's own Prometheus series (its `/metrics`), in a registry of its own so that
two agents in one process, as in tests, do not share series."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TICK_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ticks = Counter(
            "tf_agent_ticks",
            "Passes the agent made over its GPUs and workers.",
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "tf_agent_tick_duration_seconds",
            "Time one pass took.",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.workers = Gauge(
            "tf_agent_workers",
            "Workers bound to this node (pods with gpu-ids).",
            registry=self.registry,
        )
        self.worker_problems = Gauge(
            "tf_agent_worker_problems",
            "Workers whose regions could not be prepared at the last pass.",
            registry=self.registry,
        )
        self.gpus = Gauge(
            "tf_agent_gpus", "GPUs NVML reports on this node.", registry=self.registry
        )
        self.device_plugin_gpus = Gauge(
            "tf_agent_device_plugin_gpus",
            "GPUs of this node the NVIDIA device plugin has given to pods.",
            registry=self.registry,
        )
        self.checkpoint_errors = Counter(
            "tf_agent_checkpoint_errors",
            "Readings of the kubelet's device-plugin checkpoint that failed.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "tf_agent_ready", "1 while the agent is ready (see /readyz).", registry=self.registry
        )
