"""What every home (the embedded control plane, the controller) does the same way with its
started parts: hold them in one object that exists only once all of them do, stop them, and
serve the management API's reads from the leader's duties."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from tensorfusion.engine.leader_duties import JOIN_TIMEOUT_S, LeaderDuties
from tensorfusion.errors import UnavailableError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.reconciler import plan_from_store
from tensorfusion.operator.reconcilers.context import utc_now
from tensorfusion.server.backend import NodeQuery


class StartedParts(Protocol):
    @property
    def leader(self) -> LeaderDuties: ...

    @property
    def resources(self) -> ExitStack:
        """Closes what was opened, last."""
        ...


Parts = TypeVar("Parts", bound=StartedParts)


class Home(Generic[Parts]):
    """A home's `start` sets `_running` and appends its own threads (which end on `_stop`)
    to `_threads`; `stop` ends them after the leader's duties, then closes the resources."""

    NAME: ClassVar[str]
    """What the home is called in "not started" errors."""
    node_pools: NodePoolConfig = NodePoolConfig()
    """Where the node agents run and how clouds are reached, for the pools' plans."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: Parts | None = None

    def stop(self) -> None:
        self._stop.set()
        running = self._running
        if running is None:
            return
        running.leader.stop()
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT_S)
        self._threads.clear()
        running.resources.close()

    def _parts(self) -> Parts:
        if self._running is None:
            raise UnavailableError(f"{self.NAME} is not started")
        return self._running

    # --- the management API's reads ------------------------------------------------------

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self._parts().leader.simulate(pod)

    def allocation(self) -> dict[str, Any]:
        return self._parts().leader.allocation()

    def catch_up(self) -> None:
        self._parts().leader.catch_up()

    def pools(self) -> list[dict[str, Any]]:
        return self._parts().leader.pools()

    def pool_plan(self, name: str) -> dict[str, Any]:
        store = self._parts().leader.loop.store
        return plan_from_store(store, name, self.node_pools, utc_now()).to_json()

    def nodes(self) -> list[dict[str, Any]]:
        return self._parts().leader.nodes()

    def gpus(self) -> list[dict[str, Any]]:
        return self._parts().leader.gpus()

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        return self._parts().leader.node_page(query.pool, query.match, query.limit)

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return self._parts().leader.node_gpus(nodes)
