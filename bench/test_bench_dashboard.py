"""One refresh of the dashboard at 5,000 nodes x 8 H100 (a quarter of their VRAM allocated,
about 26,000 pods): the server's CPU time and the bytes it sends.

- the page's refresh: `/api/pools`, the waiting workers (`/api/workers?pending=true`), a
  page of the pool's node summaries (`/api/nodes?pool=default&limit=50`) and of the nodes
  with GPUs in no pool: a pool this large starts folded, so no GPU or worker detail is asked
  for (target: <= 50 ms of server CPU, <= 1 MB);
- the same with one node open (`/api/gpus?node=X`, `/api/workers?node=X`);
- the folded refresh as the leader answers it after a change: the listings kept per version
  (`InventoryCache`), the state changed before each refresh (one copy, every listing built),
  and the same with one node open;
- the same refresh when nothing changed: every answer is 304 with no body (with the listings
  kept per version, no body is rendered or hashed either);
- the baselines from the same run: the whole listings on this code (`/api/pools`,
  `/api/gpus` and `/api/workers`), what the page read before it narrowed its requests; and
  the folded refresh finding the waiting workers by walking every pod.

The backend reads a ClusterState built from the generated fleet as the control plane does:
without a cache, each request copies the inventory (`InventoryView.of`) and builds its rows;
`/api/workers` lists bound pods with `worker_view`, as Kubernetes mode does (without usage):
a node's by node (the store's field selector), the waiting ones by name from the allocations
that hold no present GPU (`stranded_workers`). CPU is `time.process_time` around the
requests, so the in-process client's share is counted too (each client kept open, running
its requests on one event loop as a server does)."""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.api.annotations import gpu_ids_of
from tensorfusion.embedded.workers import is_waiting, worker_view
from tensorfusion.errors import UnavailableError
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.inventory import (
    NO_POOL,
    InventoryCache,
    InventoryView,
    gpu_inventory,
    node_inventory,
    node_page,
    pool_inventory,
    stranded_workers,
)
from tensorfusion.server.app import create_app
from tensorfusion.server.backend import NodeQuery, WorkerRequest
from tensorfusion.server.settings import ServerSettings

NODES = 5_000
ROUNDS = 7
OPEN_NODE = "node-02500"
TARGET_CPU_S = 0.050
TARGET_BYTES = 1_000_000
FOLDED = [
    "/api/pools",
    "/api/workers?pending=true",
    "/api/nodes?pool=default&limit=50",
    f"/api/nodes?pool={quote(NO_POOL)}&limit=50",
]
ONE_OPEN = [*FOLDED, f"/api/gpus?node={OPEN_NODE}", f"/api/workers?node={OPEN_NODE}"]
OLD_WAY = ["/api/pools", "/api/gpus", "/api/workers"]
LOOPBACK = ("127.0.0.1", 50000)
T = TypeVar("T")


@dataclass
class StateBackend:
    state: ClusterState
    pods: list[dict[str, Any]]
    gpu_indices: dict[str, int | None]
    by_key: dict[tuple[str, str], dict[str, Any]]
    """The pods by (namespace, name): what the store's `get` reads."""
    by_node: dict[str, list[dict[str, Any]]]
    """The pods by node: what the store lists with a `spec.nodeName` field selector."""
    cache: InventoryCache | None = None
    """Listings kept per version of the state, as the leader keeps them; None builds each
    answer afresh (what a changed state costs)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    walk_pods: bool = False
    """Choose the waiting workers by walking every pod, as before they were read by name
    (the baseline)."""

    def _listing(self, key: tuple[Any, ...], build: Callable[[InventoryView], T]) -> T:
        if self.cache is None:
            return build(InventoryView.of(self.state))
        return self.cache.listing(self.state, self.lock, key, build)

    def pools(self) -> list[dict[str, Any]]:
        return self._listing(("pools",), pool_inventory)

    def nodes(self) -> list[dict[str, Any]]:
        return self._listing(("nodes",), node_inventory)

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        page = (query.pool, query.match, query.limit)
        return self._listing(("page", *page), lambda view: node_page(view, *page))

    def gpus(self) -> list[dict[str, Any]]:
        return self._listing(("gpus",), gpu_inventory)

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return self._listing(("node gpus", nodes), lambda view: gpu_inventory(view, nodes))

    def workers(self) -> list[dict[str, Any]]:
        return [worker_view(pod, self.gpu_indices, None) for pod in self.pods]

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        own = [pod for node in sorted(nodes) for pod in self.by_node.get(node, ())]
        return [worker_view(pod, self.gpu_indices, None) for pod in own]

    def pending_workers(self) -> list[dict[str, Any]]:
        if self.walk_pods:
            candidates = self.pods
        else:
            named = self._listing(("stranded",), stranded_workers)
            candidates = [self.by_key[key] for key in sorted(named)]
        if not candidates:  # as the controller: nor are the present GPUs needed
            return []
        present = self._listing(("present",), InventoryView.present_gpus)
        waiting = [
            pod
            for pod in candidates
            if is_waiting(
                pod["spec"]["nodeName"], gpu_ids_of(pod["metadata"]["annotations"]), present
            )
        ]
        return [worker_view(pod, self.gpu_indices, None) for pod in waiting]

    def pool_plan(self, name: str) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def allocation(self) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def delete_worker(self, name: str) -> dict[str, Any]:
        raise UnavailableError("not served here")

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"


@pytest.fixture(scope="module")
def backend() -> Iterator[StateBackend]:
    fleet = generate_fleet(NODES, 8, "H100", 0.25)
    state, _ = ClusterState.build(fleet)
    indices = {record.name: record.index for record in state.gpus.records}
    # As the scheduling loop does after its start: the long-lived state leaves the
    # collector's generations.
    gc.collect()
    gc.freeze()
    by_key = {(pod["metadata"]["namespace"], pod["metadata"]["name"]): pod for pod in fleet.pods}
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in fleet.pods:
        by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
    yield StateBackend(state, list(fleet.pods), indices, by_key, by_node)
    gc.unfreeze()  # the other benchmarks of the session collect as usual


Opener = Callable[[StateBackend], TestClient]


@pytest.fixture(scope="module")
def client_of() -> Iterator[Opener]:
    """Opens clients of the app over a backend, on loopback as the page's browser (reads
    need no token). Each is kept open, running its requests on one event loop as a server
    does: a client that is not starts a thread and an event loop for every request, a few
    milliseconds of CPU that no server spends."""
    with ExitStack() as opened:
        yield lambda backend: opened.enter_context(
            TestClient(create_app(backend, ServerSettings(token="bench")), client=LOOPBACK)
        )


@pytest.fixture(scope="module")
def client(backend: StateBackend, client_of: Opener) -> TestClient:
    return client_of(backend)


@dataclass(frozen=True)
class Refresh:
    cpu_s: float
    sent: int
    statuses: tuple[int, ...]


def refresh(client: TestClient, paths: list[str], etags: dict[str, str] | None) -> Refresh:
    """The page's requests one after another; `etags` (when given) sent back as
    If-None-Match, and filled with the answers' ETags."""
    sent, statuses = 0, []
    start = time.process_time()
    for path in paths:
        headers = {"If-None-Match": etags[path]} if etags and path in etags else {}
        answer = client.get(path, headers=headers)
        assert answer.status_code in (200, 304), f"{path}: {answer.status_code} {answer.text}"
        sent += len(answer.content)
        statuses.append(answer.status_code)
        if etags is not None:
            etags[path] = answer.headers["ETag"]
    return Refresh(time.process_time() - start, sent, tuple(statuses))


def medians(rounds: Callable[[], Refresh]) -> Refresh:
    runs = [rounds() for _ in range(ROUNDS)]
    cpu = statistics.median(run.cpu_s for run in runs)
    sent = int(statistics.median(run.sent for run in runs))
    return Refresh(cpu, sent, runs[-1].statuses)


def figure(what: str, run: Refresh) -> str:
    return f"{what}: server CPU {run.cpu_s * 1e3:.1f} ms, {run.sent:,} bytes (medians)"


@pytest.mark.benchmark(group="dashboard")
def test_dashboard_refresh_at_5000_nodes(
    benchmark: BenchmarkFixture,
    client: TestClient,
    backend: StateBackend,
    client_of: Opener,
    record_figure: Callable[[str], None],
) -> None:
    old = medians(lambda: refresh(client, OLD_WAY, None))
    changing = replace(backend, cache=InventoryCache())
    changing_client = client_of(changing)

    def after_a_change() -> Refresh:
        changing.cache = InventoryCache()  # a new version: one copy, every listing rebuilt
        return refresh(changing_client, FOLDED, None)

    changed = medians(after_a_change)

    def opened_after_a_change() -> Refresh:
        changing.cache = InventoryCache()
        return refresh(changing_client, ONE_OPEN, None)

    changed_open = medians(opened_after_a_change)
    walking = client_of(replace(backend, walk_pods=True))
    walked = medians(lambda: refresh(walking, FOLDED, None))
    folded = medians(lambda: refresh(client, FOLDED, None))
    opened = medians(lambda: refresh(client, ONE_OPEN, None))
    etags: dict[str, str] = {}
    refresh(client, ONE_OPEN, etags)
    unchanged = medians(lambda: refresh(client, ONE_OPEN, dict(etags)))
    assert set(unchanged.statuses) == {304}
    assert unchanged.sent == 0
    kept = client_of(replace(backend, cache=InventoryCache()))
    refresh(kept, ONE_OPEN, etags)
    cached = medians(lambda: refresh(kept, ONE_OPEN, dict(etags)))
    assert set(cached.statuses) == {304}
    benchmark.pedantic(refresh, args=(client, FOLDED, None), rounds=ROUNDS, iterations=1)  # type: ignore[no-untyped-call]

    targets = f"(targets: {TARGET_CPU_S * 1e3:.0f} ms, {TARGET_BYTES:,} bytes)"
    record_figure(figure(f"dashboard refresh at {NODES:,} nodes, folded {targets}", folded))
    record_figure(figure("  the same with one node open", opened))
    record_figure(
        figure("  folded, listings kept per version, the state changed before each", changed)
    )
    record_figure(figure("  the same with one node open", changed_open))
    record_figure(figure("  the same, unchanged (all 304), every answer built", unchanged))
    record_figure(figure("  the same, unchanged, listings kept per version (all 304)", cached))
    record_figure(figure("  baseline, the whole listings on this code (pools, gpus, workers)", old))
    record_figure(
        figure("  baseline, folded, the waiting workers found by walking every pod", walked)
    )
    record_figure(
        f"  folded refresh against the whole listings: {old.cpu_s / folded.cpu_s:.0f}x less CPU, "
        f"{old.sent / folded.sent:.0f}x fewer bytes"
    )
