"""A pool of GPU nodes whose agents a DaemonSet stand-in runs, reconciled by a Controller on
a simulated clock: each step lets the stand-in act (`sync`), then lists everything again and
reconciles until nothing is ready, as a controller that just started would."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.plan import PoolPlan
from tensorfusion.operator.nodepool.reconciler import plan_for_pool
from tensorfusion.operator.nodepool.rollout import ROLLOUT_ANNOTATION
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.interface import ClusterStore
from tests.kube.daemonset_standin import DaemonSetStandIn

from .reconciler_objects import cluster, node
from .sim_clock import SimClock

POOL = "c-p"


def rollout_cluster(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """The test cluster whose one pool, c-p, has `policy` as its nodePoolRollingUpdatePolicy."""
    obj = cluster()
    if policy is not None:
        manager = obj["spec"]["gpuPools"][0]["specTemplate"]["nodeManagerConfig"]
        manager["nodePoolRollingUpdatePolicy"] = dict(policy)
    return obj


class RolloutFleet:
    def __init__(
        self, store: ClusterStore, clock: SimClock, nodes: int, policy: Mapping[str, Any] | None
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = NodePoolConfig()
        store.create(rollout_cluster(policy))
        for number in range(nodes):
            store.create(node(f"n{number:02d}"))
        self.agents = DaemonSetStandIn(store)
        self.agents.set_image("agent:1")
        self.controller = self.new_controller()
        self.settle()

    def new_controller(self) -> Controller:
        return Controller(
            self.store, clock=self.clock.monotonic, now=self.clock.now, node_pools=self.config
        )

    def settle(self) -> None:
        """The stand-in makes what is missing, and the controller reconciles everything."""
        self.agents.sync()
        self.controller.start()
        self.controller.drain()
        self.agents.sync()
        self.controller.start()
        self.controller.drain()

    def at(self, moment: datetime) -> None:
        self.clock.advance_to(moment)
        self.settle()

    def release(self, image: str) -> None:
        """A new agent template, recorded at the present moment."""
        self.agents.set_image(image)
        self.settle()

    def updated(self) -> list[str]:
        """Nodes whose agent runs the current template."""
        current = self.agents.current_hash()
        return sorted(
            n
            for n, pod in self.agents.pods().items()
            if pod["metadata"]["labels"]["controller-revision-hash"] == current
        )

    def condition(self) -> dict[str, Any]:
        pool = self.store.get("GPUPool", POOL)
        found: list[dict[str, Any]] = [
            c for c in pool["status"]["conditions"] if c["type"] == "AgentRollout"
        ]
        (condition,) = found
        return condition

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.store.list("Event") if e["reason"] == reason]

    def plan(self) -> PoolPlan:
        return plan_for_pool(self.controller.cache, POOL, self.config, self.clock.now())

    def rollout_actions(self) -> list[dict[str, Any]]:
        return [a for a in self.plan().to_json()["actions"] if a["part"] == "rollout"]

    def record(self) -> str | None:
        annotations = self.store.get("GPUPool", POOL)["metadata"].get("annotations") or {}
        value = annotations.get(ROLLOUT_ANNOTATION)
        return value if isinstance(value, str) else None
