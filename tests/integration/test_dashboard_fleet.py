"""The dashboard in headless Chromium over fleets of 1,000 and 5,000 nodes: the folded page
reads the pools, a page of each pool's node summaries and the workers waiting for a GPU, asks
for the GPUs and workers of the nodes it shows open and of no other, and a refresh of
listings that did not change moves no body (304). Each test is one page load, checking all
it can: a Chromium load costs seconds.

The backend answers from the scheduler's state built from a generated fleet, through the
inventory code the control plane serves from; it starts no control plane (registering
thousands of nodes in a store takes a minute)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tensorfusion.embedded.workers import worker_view
from tensorfusion.errors import UnavailableError
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.inventory import (
    NO_POOL,
    InventoryView,
    gpu_inventory,
    node_page,
    pool_inventory,
)
from tensorfusion.server.app import create_app
from tensorfusion.server.backend import NodeQuery, WorkerRequest
from tensorfusion.server.dashboard import STATIC_DIR
from tensorfusion.server.runner import start_in_thread
from tensorfusion.server.settings import ServerSettings
from tests.integration.test_dashboard import CHROMIUM, Browser, header_totals

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary found: apt-get install -y chromium"
)

FLEETS = (1_000, 5_000)
"""Nodes: twenty pages of them, enough that the page lists a part of the pool only; and as
many as the dashboard's refresh is measured at (bench/test_bench_dashboard.py)."""
GPUS_PER_NODE = 8
PER_PAGE = 50
"""The page's NODES_PER_PAGE."""


@dataclass
class FleetBackend:
    """The inventory of one ClusterState; records which listings the page asked for."""

    view: InventoryView
    waiting: list[dict[str, Any]] = field(default_factory=list)
    """What `pending_workers` answers."""
    asked: list[tuple[str, Any]] = field(default_factory=list)

    def pools(self) -> list[dict[str, Any]]:
        return pool_inventory(self.view)

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        self.asked.append(("nodes", query))
        return node_page(self.view, query.pool, query.match, query.limit)

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        self.asked.append(("gpus", nodes))
        return gpu_inventory(self.view, nodes)

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        self.asked.append(("workers", nodes))
        return []

    def pending_workers(self) -> list[dict[str, Any]]:
        self.asked.append(("pending", None))
        return self.waiting

    def nodes(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for a page of each pool's nodes only")

    def gpus(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for the GPUs of the nodes it shows open only")

    def workers(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for the workers of the nodes it shows open only")

    def pool_plan(self, name: str) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def allocation(self) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def delete_worker(self, name: str) -> dict[str, Any]:
        raise UnavailableError("not served by this backend")

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"


CLICK_PREFIX = "/click/"
"""`/click/NODE` serves the page with a script that opens NODE as a reader would: by clicking
its summary once it is drawn (a headless page that only loads cannot be clicked)."""


def page_clicking(node: str) -> str:
    index = (STATIC_DIR / "index.html").read_text()
    script = (
        "<script>const clicking = setInterval(() => {"
        f"const summary = document.querySelector('[data-node=\"{node}\"] summary');"
        "if (summary) { clearInterval(clicking); summary.click(); }"
        "}, 100);</script>"
    )
    # Relative addresses resolve against /click/: point them at the root.
    return index.replace("<head>", '<head><base href="/">', 1).replace(
        "</body>", script + "</body>"
    )


@dataclass
class Traffic:
    """The API answers the server sent: (path, query, status, body bytes)."""

    app: ASGIApp
    answers: list[tuple[str, dict[str, list[str]], int, int]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CLICK_PREFIX):
            node = scope["path"].removeprefix(CLICK_PREFIX)
            await HTMLResponse(page_clicking(node))(scope, receive, send)
            return
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        answer = {"status": 0, "size": 0}

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["size"] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recording)
        query = parse_qs(scope["query_string"].decode())
        self.answers.append((scope["path"], query, answer["status"], answer["size"]))


@dataclass
class Served:
    url: str
    nodes: int
    backend: FleetBackend
    traffic: Traffic


@pytest.fixture(scope="module", params=FLEETS, ids=lambda nodes: f"{nodes} nodes")
def fleet(request: pytest.FixtureRequest) -> tuple[int, InventoryView]:
    """The number of nodes and the inventory of their fleet."""
    nodes: int = request.param
    state, _ = ClusterState.build(generate_fleet(nodes, GPUS_PER_NODE, "H100", 0.0))
    return nodes, InventoryView.of(state)


@pytest.fixture
def served(fleet: tuple[int, InventoryView]) -> Iterator[Served]:
    nodes, view = fleet
    backend = FleetBackend(view)
    traffic = Traffic(create_app(backend, ServerSettings(token="fleet-token")))
    with start_in_thread(traffic) as server:
        yield Served(server.url, nodes, backend, traffic)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(tmp_path_factory.mktemp("chromium-profile"))


def test_folded_fleet_reads_summaries_and_opened_nodes_only_and_lists_the_waiting(
    served: Served, browser: Browser
) -> None:
    """One load (a Chromium load costs seconds): the page comes up folded, reading the
    summaries and the waiting workers; a reader then opens node-00007, whose details alone
    are asked for; refreshes of unchanged listings move no body."""
    pod = {"metadata": {"name": "queued-job", "namespace": "team-a", "annotations": {}}}
    served.backend.waiting = [worker_view(pod, {}, None)]
    page = browser.dom(f"{served.url}{CLICK_PREFIX}node-00007")
    [pool] = pool_inventory(served.backend.view)
    assert header_totals(page)["gpus"] == f"{served.nodes * GPUS_PER_NODE:,}"
    assert header_totals(page)["nodes"] == f"{served.nodes:,}"
    nodes = page.all("data-node")
    assert [n.attrs["data-node"] for n in nodes] == [f"node-{i:05d}" for i in range(PER_PAGE)]
    opened = [n.attrs["data-node"] for n in nodes if n.attrs.get("open") is not None]
    assert opened == ["node-00007"], "a large pool starts folded: only the clicked node opens"
    gpus = [g.attrs["data-gpu"] for g in page.all("data-gpu")]
    assert gpus == [f"node-00007-gpu-{i}" for i in range(GPUS_PER_NODE)]
    [more] = page.tags("button")
    assert more.text() == f"Show all {served.nodes:,} nodes ({served.nodes - PER_PAGE:,} more)"

    [section] = [s for s in page.tags("section") if s.has_class("pending")]
    assert "Waiting for a GPU" in section.text()
    assert [w.attrs["data-worker"] for w in section.all("data-worker")] == ["team-a/queued-job"]
    workers_tile = page.one("data-total", "workers")
    assert workers_tile.tags("small")[0].text() == "1 waiting"

    asked = served.backend.asked
    assert {kind for kind, _ in asked} == {"nodes", "pending", "gpus", "workers"}
    assert details_asked(served) == {"node-00007"}, "no other node's detail"
    pages = {query for kind, query in asked if kind == "nodes"}
    assert pages == {NodeQuery(pool["name"], None, PER_PAGE), NodeQuery(NO_POOL, None, PER_PAGE)}
    by_url: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for path, query, status, size in served.traffic.answers:
        by_url.setdefault((path, repr(sorted(query.items()))), []).append((status, size))
    paths = {path for path, _ in by_url}
    assert paths == {"/api/pools", "/api/nodes", "/api/workers", "/api/gpus"}
    for url, answers in by_url.items():
        assert answers[0][0] == 200
        assert len(answers) > 1, f"{url}: asked again by a refresh"
        assert answers[1:] == [(304, 0)] * (len(answers) - 1), f"{url}: unchanged, no body"


def test_filter_opens_the_node_it_finds_and_asks_for_its_details_only(
    served: Served, browser: Browser
) -> None:
    page = browser.dom(f"{served.url}/?filter=node-00321-gpu-5")
    assert [n.attrs["data-node"] for n in page.all("data-node")] == ["node-00321"]
    assert page.one("data-node", "node-00321").attrs.get("open") is not None
    assert [g.attrs["data-gpu"] for g in page.all("data-gpu")] == ["node-00321-gpu-5"]
    assert details_asked(served) == {"node-00321"}
    # Nothing waits: no section, and the workers' tile (which counts every waiting worker,
    # whatever the filter) says nothing of waiting.
    assert "Waiting for a GPU" not in page.text()
    assert page.one("data-total", "workers").tags("small") == []


def details_asked(served: Served) -> set[str]:
    """The nodes whose GPUs or workers the page asked for (each kind for the same nodes)."""
    asked = {kind: nodes for kind, nodes in served.backend.asked if kind in ("gpus", "workers")}
    assert asked.keys() == {"gpus", "workers"}, "both details are asked for"
    assert asked["gpus"] == asked["workers"]
    return set(asked["gpus"])
