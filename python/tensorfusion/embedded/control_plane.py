"""The embedded control plane: in one process, the local store, the GPUs of this host or of
a declared fleet, the node agent with its usage recorder and worker service, and the leader's
duties (`engine.leader_duties`, through the same lease code as a replicated controller); it
is the backend the management server serves from.

Threads: the agent and its usage recorder each have one, besides the leader's; HTTP
requests come from the server's.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tensorfusion.agent.discovery import (
    PROGRESS_EVERY_S,
    discover_nvml,
    register,
)
from tensorfusion.agent.node_agent import NodeAgent
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.usage_recorder import UsageRecorder
from tensorfusion.agent.worker_pods import list_workers
from tensorfusion.api.gpu_links import OWNER_LABEL
from tensorfusion.embedded.fleet_cache import read_fleet
from tensorfusion.embedded.state_dir import StateDir
from tensorfusion.embedded.worker_service import WorkerService
from tensorfusion.embedded.workers import is_pending
from tensorfusion.engine.home import Home
from tensorfusion.engine.leader_duties import LeaderDuties
from tensorfusion.engine.observability import Observability, ObservabilityConfig
from tensorfusion.engine.threads import start_daemon
from tensorfusion.errors import ConfigError, UnavailableError
from tensorfusion.metrics.gpu_readings import NvmlReader
from tensorfusion.operator.leader_election import LeaderElection
from tensorfusion.scheduler.profile import load_scheduler_config
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.store.local import LocalStore

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class ControlPlaneConfig:
    state_dir: Path
    fleet: Path | None = None
    """A declared fleet; when given it is registered instead of this host's GPUs."""
    scheduler_config: Path | None = None
    node_name: str = field(default_factory=socket.gethostname)
    agent_interval_s: float = 1.0
    lease_duration_s: float = 15.0
    lease_renew_s: float = 5.0
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)


@dataclass(frozen=True)
class Running:
    """The started parts; made only once every one of them is."""

    state: StateDir
    token: str
    agent: NodeAgent
    workers: WorkerService
    observability: Observability
    usage: UsageRecorder
    leader: LeaderDuties
    resources: ExitStack
    """Closes what was opened (NVML, the metrics sink, the store, the state dir's lock)."""


class ControlPlane(Home[Running]):
    """Implements `server.backend.ManagementBackend`. `start` raises ConfigError naming the
    flag at fault (state dir, fleet, scheduler config) and leaves nothing running."""

    NAME = "the control plane"

    def __init__(self, config: ControlPlaneConfig, *, progress: Callable[[str], None] = log.info):
        super().__init__()
        self.config = config
        self.progress = progress

    # --- life cycle ----------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> None:
        """Start every loop; with `wait_ready`, return once the scheduler has built its state
        (at once when this replica leads; after the old lease expires when a killed process
        of another name held it)."""
        running = self._open()
        self._running = running
        # The API answers while the agent and the recorders compute in other threads of this
        # interpreter: a shorter switch interval (5 ms by default) bounds how long a request
        # waits for its turn each time it needs the interpreter back.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        running.leader.start()
        self._threads = [
            start_daemon("agent", self._run_agent, running.agent),
            start_daemon(
                "usage-metrics", running.observability.run_agent, self._stop, running.usage.points
            ),
        ]
        if wait_ready:
            self.progress("building the scheduler's state")
            while not running.leader.ready.wait(0.1) and not self._stop.is_set():
                pass

    def _open(self) -> Running:
        """Every part, or, when one fails, none: what was opened is closed again."""
        scheduler_config = (
            load_scheduler_config(self.config.scheduler_config)
            if self.config.scheduler_config
            else None
        )
        with ExitStack() as resources:
            state = StateDir.acquire(self.config.state_dir)
            resources.callback(state.release)
            store = LocalStore(state.paths.store)
            resources.callback(store.close)
            self._register_gpus(store, state)
            regions = WorkerRegions(state.paths.regions, spill_root=state.paths.spill)
            agent = NodeAgent(store, regions)
            workers = WorkerService(
                store, regions, agent, self.simulate, self._stop, catch_up=self.catch_up
            )
            self.progress("checking workers left from an earlier run")
            agent.tick()
            observability = Observability(self.config.observability, state.paths.root)
            resources.callback(observability.close)
            nvml = NvmlReader()
            resources.callback(nvml.close)
            usage = UsageRecorder(
                partial(list_workers, store),
                partial(self._recorded_gpus, store, agent),
                regions,
                nvml,
            )
            # The state dir's lock makes this process the only one on it, so the lease holder
            # can be the same name across restarts and a restart leads at once.
            election = LeaderElection(
                store,
                f"embedded@{self.config.node_name}",
                duration_s=self.config.lease_duration_s,
                renew_every_s=self.config.lease_renew_s,
            )
            leader = LeaderDuties(store, election, observability, scheduler_config, self._stop)
            running = Running(
                state=state,
                token=state.token(),
                agent=agent,
                workers=workers,
                observability=observability,
                usage=usage,
                leader=leader,
                resources=resources.pop_all(),
            )
        return running

    def _register_gpus(self, store: LocalStore, state: StateDir) -> None:
        if self.config.fleet is not None:
            self.progress(f"reading the fleet in {self.config.fleet}")
            began = time.monotonic()
            objects = read_fleet(self.config.fleet, state.paths.root)
            if (took := time.monotonic() - began) >= PROGRESS_EVERY_S:
                self.progress(f"read {len(objects):,} objects in {took:.1f} s")
        else:
            self.progress("looking for GPUs through NVML")
            objects = discover_nvml(self.config.node_name, state.paths.root) or []
        if objects:
            self.progress(str(register(store, objects, progress=self.progress)))
        elif store.list("GPU"):
            self.progress("no GPUs found on this host: pooling the GPUs registered earlier")
        else:
            raise ConfigError(
                "--fleet",
                "no GPUs: no NVIDIA driver was found (NVML) and no fleet file was given; "
                "run `tensor-fusion up --fleet examples/fleets/h100.yaml` to pool a declared fleet",
            )

    def _run_agent(self, agent: NodeAgent) -> None:
        while not self._stop.wait(self.config.agent_interval_s):
            try:
                agent.tick()
            except Exception:  # the next tick tries again
                log.exception("the node agent's pass failed")

    @property
    def state(self) -> StateDir:
        return self._parts().state

    @property
    def token(self) -> str:
        """The management API's bearer token."""
        return self._parts().token

    # --- ManagementBackend ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        try:
            return self._parts().leader.readiness()
        except UnavailableError as exc:
            return False, str(exc)

    def workers(self) -> list[dict[str, Any]]:
        return self._parts().workers.views()

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        # Local workers are few (processes of this host): the whole list is cheap.
        return [worker for worker in self.workers() if worker["node"] in nodes]

    def pending_workers(self) -> list[dict[str, Any]]:
        present = self._parts().leader.present_gpus()
        return [worker for worker in self.workers() if is_pending(worker, present)]

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        running = self._parts()
        running.leader.scheduler()  # refused at once (503) when the scheduler is not running
        return running.workers.create(request)

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        return self._parts().workers.add_pids(name, pids)

    def delete_worker(self, name: str) -> dict[str, Any]:
        return self._parts().workers.delete(name)

    # --- helpers -------------------------------------------------------------------------

    def _recorded_gpus(
        self, store: LocalStore, agent: NodeAgent, workers: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The GPUs whose usage the agent records: this host's, and those workers hold (a
        declared fleet's GPUs are not on this host; listing all of them each time would cost
        the API its latency on a large fleet)."""
        gpus = {
            gpu["metadata"]["name"]: gpu
            for gpu in store.list("GPU", label_selector={OWNER_LABEL: self.config.node_name})
        }
        for pod in workers:
            gpus |= {gpu["metadata"]["name"]: gpu for gpu in agent.gpus_of(pod)}
        return list(gpus.values())
