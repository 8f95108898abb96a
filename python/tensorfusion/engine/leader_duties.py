"""What only the leader runs, the same in every home: the scheduling loop over the store,
the allocation tables and alert evaluation; and the reads the management API serves from
the scheduler's state (simulate, allocation, inventories), on every replica that leads.

Threads: the lease, the scheduler (while leading) and the leader's metrics each have one.
The scheduler's cluster state is shared: every reader takes `lock`, which the scheduler
holds around each pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration
from tensorfusion.engine.observability import Observability
from tensorfusion.engine.threads import start_daemon
from tensorfusion.errors import TensorFusionError, UnavailableError
from tensorfusion.metrics.sink import Lines
from tensorfusion.operator.leader_election import LeaderElection
from tensorfusion.scheduler.allocation_lines import allocation_batches
from tensorfusion.scheduler.allocation_recorder import AllocationRecorder
from tensorfusion.scheduler.inventory import (
    InventoryCache,
    InventoryView,
    gpu_inventory,
    node_inventory,
    node_page,
    pool_inventory,
    stranded_workers,
)
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.scheduler.simulate import profile_for, simulate
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_S = 1.0
"""Pause before a scheduler that failed starts again."""
JOIN_TIMEOUT_S = 10.0


class LeaderDuties:
    """`start` starts the threads; `stop`, once `stopping` is set, ends them and gives the
    lease up. The reads raise UnavailableError while the scheduler is not running."""

    def __init__(
        self,
        store: ClusterStore,
        election: LeaderElection,
        observability: Observability,
        scheduler_config: KubeSchedulerConfiguration | None,
        stopping: threading.Event,
        *,
        on_unschedulable: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        self.loop = SchedulingLoop(store, scheduler_config, on_unschedulable=on_unschedulable)
        self.election = election
        self.observability = observability
        self.allocations = AllocationRecorder(self.loop, pools=lambda: store.list("GPUPool"))
        self.stopping = stopping
        self.lock = threading.Lock()
        self._inventory = InventoryCache()
        self.ready = threading.Event()
        """Set while the scheduler's state is built and it schedules."""
        self._lease_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._lease_thread = start_daemon("lease", self.election.run, self.stopping)
        self._threads = [
            start_daemon("scheduler", self._schedule),
            start_daemon(
                "leader-metrics",
                self.observability.run_leader,
                self.stopping,
                self.election.is_leader,
                self._allocation_lines,
            ),
        ]

    def stop(self) -> None:
        """The lease thread ends first, so that releasing the lease is the last word on it;
        the release sets `lost`, which ends the scheduler's pass."""
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=JOIN_TIMEOUT_S)
        try:
            self.election.release()
        except TensorFusionError as exc:
            # Leadership has ended all the same; the rest must still stop and close.
            log.warning("could not give the lease up (%s): it expires on its own", exc)
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT_S)
        self._threads.clear()

    def _schedule(self) -> None:
        """While leading: build the scheduler state from the store and schedule; when the
        lease is lost, stop and wait to lead again (then rebuild: others may have bound)."""
        while not self.stopping.is_set():
            if not self.election.is_leader.wait(0.2):
                continue
            try:
                with self.lock:
                    self.loop.start()
                self.ready.set()
                self.loop.run(self.election.lost, lock=self.lock)
            except Exception:
                # A store fault (a locked or full disk, an unreachable server) must not end
                # scheduling for good: not ready meanwhile, then a fresh start from the store.
                log.exception("the scheduler stopped on an error; restarting it")
                self.stopping.wait(RETRY_S)
            finally:
                self.ready.clear()
                with self.lock:
                    self.loop.close()

    def _allocation_lines(self, now_ns: int) -> Iterator[Lines]:
        """The allocation tables, from the scheduler's state (so only while it is built),
        a run of rows at a time as the writer takes them."""
        if not self.ready.is_set():
            return iter(())
        with self.lock:  # only the figures are taken under it; the rows are built after
            figures = self.allocations.figures()
        return allocation_batches(self.allocations, figures, now_ns)

    # --- reads ---------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "shutting down"
        if not self.ready.is_set():
            return False, "the scheduler is not running (not the leader yet, or starting)"
        return True, "ready"

    def scheduler(self) -> SchedulingLoop:
        """The running scheduler; UnavailableError (503) saying why when it is not."""
        ready, why = self.readiness()
        if not ready:
            raise UnavailableError(why)
        return self.loop

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        loop = self.scheduler()
        profile = profile_for(loop.profiles, pod)
        with self.lock:
            return simulate(profile, loop.cluster, pod)

    def catch_up(self) -> None:
        """Apply the store's changes to the scheduler now, between its passes: a caller that
        has just written (released a worker) then reads its write back."""
        if not self.readiness()[0]:
            return  # a scheduler that starts (again) lists the store afresh
        with self.lock:
            self.loop.sync()

    def allocation(self) -> dict[str, Any]:
        loop = self.scheduler()
        with self.lock:
            return loop.cluster.gpus.snapshot()

    def pools(self) -> list[dict[str, Any]]:
        return self._listing(("pools",), pool_inventory)

    def nodes(self) -> list[dict[str, Any]]:
        return self._listing(("nodes",), node_inventory)

    def gpus(self) -> list[dict[str, Any]]:
        return self._listing(("gpus",), gpu_inventory)

    def node_page(
        self, pool: str | None, match: str | None, limit: int | None
    ) -> tuple[list[dict[str, Any]], int]:
        key = ("node page", pool, match, limit)
        return self._listing(key, lambda view: node_page(view, pool, match, limit))

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return self._listing(("node gpus", nodes), lambda view: gpu_inventory(view, nodes))

    def present_gpus(self) -> set[str]:
        """The GPUs still in the cluster (a worker holding none of them waits for one)."""
        return self._listing(("present",), InventoryView.present_gpus)

    def stranded_workers(self) -> list[tuple[str, str]]:
        """The (namespace, name) of the bound pods that hold no GPU still in the cluster: those
        whose allocation's GPUs all left, and those whose GPUs had already left when the
        scheduler started (so none was restored). Read from the scheduler's state, not from
        the pods."""
        stranded = self._listing(("stranded",), stranded_workers)
        keys = (pod.partition("/") for pod, _ in self.loop.report.vanished)
        return stranded + [(namespace, name) for namespace, _, name in keys]

    def _listing(self, key: tuple[Any, ...], build: Callable[[InventoryView], T]) -> T:
        """A listing of the scheduler's state as it is now, built once per change of it (the
        figures are copied under the lock, the rows built after it); shared, not to be
        modified."""
        return self._inventory.listing(self.scheduler().cluster, self.lock, key, build)
