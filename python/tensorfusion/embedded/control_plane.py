"""The embedded control plane: in one process, the local store, the node agent, the
scheduler loop (leader-only, through the same lease code as a replicated controller) and the
backend the management server serves from.

Threads: the lease, the scheduler (while leading) and the agent each have one; HTTP requests
come from the server's. The scheduler's cluster state is shared: every reader takes `_lock`,
which the scheduler holds around each pass.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorfusion.agent.discovery import (
    PROGRESS_EVERY_S,
    discover_nvml,
    register,
)
from tensorfusion.agent.node_agent import NodeAgent
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.worker_pods import list_workers
from tensorfusion.api.gpu_links import OWNER_LABEL
from tensorfusion.embedded.fleet_cache import read_fleet
from tensorfusion.embedded.observability import Observability, ObservabilityConfig
from tensorfusion.embedded.state_dir import StateDir
from tensorfusion.embedded.worker_service import WorkerService
from tensorfusion.errors import (
    ConfigError,
    UnavailableError,
)
from tensorfusion.metrics.allocation_recorder import AllocationRecorder
from tensorfusion.metrics.gpu_readings import NvmlReader
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.usage_recorder import UsageRecorder
from tensorfusion.operator.leader_election import LeaderElection
from tensorfusion.scheduler.inventory import (
    InventoryView,
    gpu_inventory,
    node_inventory,
    pool_inventory,
)
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.scheduler.profile import load_scheduler_config
from tensorfusion.scheduler.simulate import profile_for, simulate
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.store.local import LocalStore

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
RETRY_S = 1.0
"""Pause before a loop that failed starts again."""


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


class ControlPlane:
    """Implements `server.backend.ManagementBackend`. `start` raises ConfigError naming the
    flag at fault (state dir, fleet, scheduler config) and leaves nothing running."""

    def __init__(self, config: ControlPlaneConfig, *, progress: Callable[[str], None] = log.info):
        self.config = config
        self.progress = progress
        self.token = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler_ready = threading.Event()
        self._state: StateDir | None = None
        self._store: LocalStore | None = None
        self._loop: SchedulingLoop | None = None
        self._agent: NodeAgent | None = None
        self._regions: WorkerRegions | None = None
        self._election: LeaderElection | None = None
        self._observability: Observability | None = None
        self._workers: WorkerService | None = None
        self._nvml: NvmlReader | None = None
        self._usage: UsageRecorder | None = None
        self._allocations: AllocationRecorder | None = None

    # --- life cycle ----------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> None:
        """Start every loop; with `wait_ready`, return once the scheduler has built its state
        (at once when this replica leads; after the old lease expires when a killed process
        of another name held it)."""
        scheduler_config = (
            load_scheduler_config(self.config.scheduler_config)
            if self.config.scheduler_config
            else None
        )
        self._state = StateDir.acquire(self.config.state_dir)
        try:
            self.token = self._state.token()
            self._store = LocalStore(self._state.paths.store)
            self._register_gpus()
            self._regions = WorkerRegions(self._state.paths.regions)
            self._agent = NodeAgent(self._store, self._regions)
            self._workers = WorkerService(
                self._store, self._regions, self._agent, self.simulate, self._stop
            )
            self.progress("checking workers left from an earlier run")
            self._agent.tick()
            self._loop = SchedulingLoop(self._store, scheduler_config)
            self._observability = Observability(self.config.observability, self._state.paths.root)
            self._nvml = NvmlReader()
            self._usage = UsageRecorder(
                lambda: list_workers(self._engine()[0]),
                self._recorded_gpus,
                self._regions,
                self._nvml,
            )
            self._allocations = AllocationRecorder(self._loop)
            # The state dir's lock makes this process the only one on it, so the lease holder
            # can be the same name across restarts and a restart leads at once.
            self._election = LeaderElection(
                self._store,
                f"embedded@{self.config.node_name}",
                duration_s=self.config.lease_duration_s,
                renew_every_s=self.config.lease_renew_s,
            )
        except BaseException:
            self._close()
            raise
        # The API answers while the agent and the recorders compute in other threads of this
        # interpreter: a shorter switch interval (5 ms by default) bounds how long a request
        # waits for its turn each time it needs the interpreter back.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._spawn("lease", self._election.run, self._stop)
        self._spawn("scheduler", self._lead)
        self._spawn("agent", self._run_agent)
        self._spawn("usage-metrics", self._observability.run_agent, self._stop, self._usage_points)
        self._spawn(
            "leader-metrics",
            self._observability.run_leader,
            self._stop,
            self._election.is_leader,
            self._allocation_points,
        )
        if wait_ready:
            self.progress("building the scheduler's state")
            while not self._scheduler_ready.wait(0.1) and not self._stop.is_set():
                pass

    def _register_gpus(self) -> None:
        assert self._store is not None
        assert self._state is not None
        if self.config.fleet is not None:
            self.progress(f"reading the fleet in {self.config.fleet}")
            began = time.monotonic()
            objects = read_fleet(self.config.fleet, self._state.paths.root)
            if (took := time.monotonic() - began) >= PROGRESS_EVERY_S:
                self.progress(f"read {len(objects):,} objects in {took:.1f} s")
        else:
            self.progress("looking for GPUs through NVML")
            objects = discover_nvml(self.config.node_name, self._state.paths.root) or []
        if objects:
            self.progress(str(register(self._store, objects, progress=self.progress)))
        elif self._store.list("GPU"):
            self.progress("no GPUs found on this host: pooling the GPUs registered earlier")
        else:
            raise ConfigError(
                "--fleet",
                "no GPUs: no NVIDIA driver was found (NVML) and no fleet file was given; "
                "run `tensor-fusion up --fleet examples/fleets/h100.yaml` to pool a declared fleet",
            )

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"tf-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _lead(self) -> None:
        """While leading: build the scheduler state from the store and schedule; when the
        lease is lost, stop and wait to lead again (then rebuild: others may have bound)."""
        assert self._election is not None
        assert self._loop is not None
        while not self._stop.is_set():
            if not self._election.is_leader.wait(0.2):
                continue
            try:
                with self._lock:
                    self._loop.start()
                self._scheduler_ready.set()
                self._loop.run(self._election.lost, lock=self._lock)
            except Exception:
                # A store fault (a locked or full disk) must not end scheduling for good:
                # not ready meanwhile, then a fresh start from the store.
                log.exception("the scheduler stopped on an error; restarting it")
                self._stop.wait(RETRY_S)
            finally:
                self._scheduler_ready.clear()

    def _run_agent(self) -> None:
        assert self._agent is not None
        while not self._stop.wait(self.config.agent_interval_s):
            try:
                self._agent.tick()
            except Exception:  # as above: the next tick tries again
                log.exception("the node agent's pass failed")

    def _usage_points(self, now_ns: int) -> list[Point]:
        assert self._usage is not None
        return self._usage.points(now_ns)

    def _allocation_points(self, now_ns: int) -> list[Point]:
        """The leader's tables, from the scheduler's state (so only while it is built)."""
        if self._allocations is None or not self._scheduler_ready.is_set():
            return []
        with self._lock:  # only the figures are taken under it; the rows are built after
            figures = self._allocations.figures()
        return self._allocations.points(now_ns, figures)

    def stop(self) -> None:
        """Stop the loops, give up the lease, close the store and unlock the state dir."""
        self._stop.set()
        lease, others = self._threads[:1], self._threads[1:]
        for thread in lease:
            thread.join(timeout=10)
        if self._election is not None:
            self._election.release()  # sets `lost`, which ends the scheduler's pass
        for thread in others:
            thread.join(timeout=10)
        self._threads.clear()
        self._close()

    def _close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None
        if self._observability is not None:
            self._observability.close()
            self._observability = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._state is not None:
            self._state.release()

    @property
    def state(self) -> StateDir:
        if self._state is None:
            raise UnavailableError("the control plane is not started")
        return self._state

    # --- ManagementBackend ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self._stop.is_set():
            return False, "shutting down"
        if self._store is None:
            return False, "not started"
        if not self._scheduler_ready.is_set():
            return False, "the scheduler is not running (not the leader yet, or starting)"
        return True, "ready"

    def _scheduler(self) -> SchedulingLoop:
        ready, why = self.readiness()
        if not ready or self._loop is None:
            raise UnavailableError(why)
        return self._loop

    def _inventory(self) -> InventoryView:
        """The listings' figures, copied under the lock and summed after it."""
        loop = self._scheduler()
        with self._lock:
            return InventoryView.of(loop.cluster)

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        loop = self._scheduler()
        profile = profile_for(loop.profiles, pod)
        with self._lock:
            return simulate(profile, loop.cluster, pod)

    def allocation(self) -> dict[str, Any]:
        loop = self._scheduler()
        with self._lock:
            return loop.cluster.gpus.snapshot()

    def pools(self) -> list[dict[str, Any]]:
        return pool_inventory(self._inventory())

    def nodes(self) -> list[dict[str, Any]]:
        return node_inventory(self._inventory())

    def gpus(self) -> list[dict[str, Any]]:
        return gpu_inventory(self._inventory())

    def workers(self) -> list[dict[str, Any]]:
        return self._worker_service().views()

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        self._scheduler()  # refused at once (503) when the scheduler is not running
        return self._worker_service().create(request)

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        return self._worker_service().add_pids(name, pids)

    def delete_worker(self, name: str) -> dict[str, Any]:
        return self._worker_service().delete(name)

    # --- helpers -------------------------------------------------------------------------

    def _recorded_gpus(self, workers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The GPUs whose usage the agent records: this host's, and those workers hold (a
        declared fleet's GPUs are not on this host; listing all of them each time would cost
        the API its latency on a large fleet)."""
        store, agent = self._engine()
        gpus = {
            gpu["metadata"]["name"]: gpu
            for gpu in store.list("GPU", label_selector={OWNER_LABEL: self.config.node_name})
        }
        for pod in workers:
            gpus |= {gpu["metadata"]["name"]: gpu for gpu in agent.gpus_of(pod)}
        return list(gpus.values())

    def _engine(self) -> tuple[LocalStore, NodeAgent]:
        if self._store is None or self._agent is None:
            raise UnavailableError("the control plane is not started")
        return self._store, self._agent

    def _worker_service(self) -> WorkerService:
        if self._workers is None:
            raise UnavailableError("the control plane is not started")
        return self._workers
