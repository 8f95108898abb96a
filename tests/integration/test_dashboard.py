"""The dashboard in headless Chromium.

The main tests run the real stack: the embedded control plane on a generated fleet behind the
management server, with a worker created through the backend and usage written into its
shared region as the shim would. The page's figures are checked against the API's own JSON,
formatted as the page formats them. What the control plane cannot be brought to answer (an
empty inventory, errors, names that look like markup) comes from a canned backend behind the
same server; an API that drops connections from a plain HTTP server."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.errors import UnavailableError
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.app import create_app
from tensorfusion.server.backend import NodeQuery, WorkerRequest
from tensorfusion.server.dashboard import STATIC_DIR
from tensorfusion.server.runner import RunningServer, start_in_thread
from tensorfusion.server.settings import ServerSettings

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium binary found: apt-get install -y chromium"
    ),
    pytest.mark.timing,
]

SCREENSHOT_COPY = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "dashboard.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = (1400, 1000)
GIB = 1024**3
WORKER = "dash-train"
USED_VRAM = 3 * GIB // 2
PAGED_TO_HOST = GIB // 2
LAUNCHES = 1200
THROTTLED = 17
SETTLE_S = 30.0
"""How long the agent may take to read the worker's usage back (it ticks every 0.1 s here)."""


# ---- the page as the browser leaves it ---------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        """The text inside, with white space collapsed as a reader sees it."""
        return " ".join(self._raw_text().split())

    def _raw_text(self) -> str:
        return "".join(c if isinstance(c, str) else c._raw_text() for c in self.children)

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.walk()

    def all(self, attr: str, value: str | None = None) -> list[Element]:
        return [e for e in self.walk() if attr in e.attrs and value in (None, e.attrs[attr])]

    def one(self, attr: str, value: str | None = None) -> Element:
        found = self.all(attr, value)
        assert len(found) == 1, f"expected one element with {attr}={value!r}, found {len(found)}"
        return found[0]

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.walk() if e.tag == tag]

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#document", {})
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self._open[-1].children.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


def parse_html(text: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


class Browser:
    """Headless Chromium with a profile of its own; each call loads the page once and lets
    five seconds of page time pass (the first fetch and two refreshes)."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile

    def _run(self, url: str, *flags: str) -> str:
        assert CHROMIUM is not None
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            "--virtual-time-budget=5000",
            *flags,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
        return done.stdout

    def dom(self, url: str) -> Element:
        return parse_html(self._run(url, "--dump-dom"))

    def screenshot(self, url: str, path: Path) -> bytes:
        self._run(url, f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
        return path.read_bytes()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(tmp_path_factory.mktemp("chromium-profile"))


# ---- the figures as the page writes them -------------------------------------------------


def fmt_number(value: float) -> str:
    """One decimal at most, thousands grouped; halves round up, as Math.round does."""
    return f"{math.floor(value * 10 + 0.5) / 10:,.1f}".removesuffix(".0")


def fmt_bytes(count: int) -> str:
    if count == 0:
        return "0 GiB"
    value, units = count / 2**20, ["MiB", "GiB", "TiB", "PiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{fmt_number(value)} {units[0]}"


FORMATS = {"tflops": fmt_number, "vram": fmt_bytes}
FIGURE_NAMES = ("capacity", "virtualCapacity", "allocated", "allocatedLimits")


def header_totals(page: Element) -> dict[str, str]:
    """The header's figures by name (the value, without its label)."""
    return {tile.attrs["data-total"]: tile.tags("dd")[0].text() for tile in page.all("data-total")}


def width_of(element: Element) -> float:
    found = re.search(r"width:\s*([0-9.]+)%", element.attrs.get("style", ""))
    assert found, f"no width in {element.attrs}"
    return float(found.group(1))


def check_bars(scope: Element, figures: dict[str, Any], *, compact: bool = False) -> None:
    """Both bars of `scope` show `figures` (an API object with capacity, virtualCapacity,
    allocated and allocatedLimits), and their segments are drawn to scale."""
    # The scope's own bars, not those of the nodes or GPUs inside it.
    [own] = [c for c in scope.children if isinstance(c, Element) and c.has_class("bars")]
    for metric, fmt in FORMATS.items():
        bar = own.one("data-metric", metric)
        requested, limits = figures["allocated"][metric], figures["allocatedLimits"][metric]
        physical, virtual = figures["capacity"][metric], figures["virtualCapacity"][metric]
        shown = {e.attrs["data-figure"]: e.text() for e in bar.all("data-figure")}
        expected = {"requested": fmt(requested), "physical": fmt(physical)}
        if not compact:
            expected |= {"limits": fmt(limits), "virtual": fmt(virtual)}
        assert shown == expected, f"{metric} bar of {scope.attrs}"
        scale = max(virtual, physical, limits, requested)
        segments = {
            kind: next(e for e in bar.walk() if e.has_class("seg") and e.has_class(kind))
            for kind in ("req", "lim")
        }
        assert width_of(segments["req"]) == pytest.approx(100 * requested / scale, abs=0.01)
        assert width_of(segments["lim"]) == pytest.approx(100 * limits / scale, abs=0.01)


# ---- the real stack ----------------------------------------------------------------------


def get_json(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}/{path}", timeout=10) as answer:
        return json.load(answer)


@dataclass
class Stack:
    url: str
    control_plane: ControlPlane

    def api(self) -> dict[str, Any]:
        return {key: get_json(self.url, f"api/{key}")[key] for key in ("pools", "gpus", "workers")}


@contextlib.contextmanager
def running_stack(state: Path, nodes: int, gpus_per_node: int) -> Iterator[Stack]:
    fleet = state / "fleet.yaml"
    fleet.write_text(generate_fleet(nodes, gpus_per_node, "H100", 0.25).to_yaml())
    control_plane = ControlPlane(
        ControlPlaneConfig(state_dir=state / "state", fleet=fleet, agent_interval_s=0.1)
    )
    control_plane.start()
    try:
        app = create_app(control_plane, ServerSettings(token=control_plane.token))
        with start_in_thread(app) as server:
            yield Stack(server.url, control_plane)
    finally:
        control_plane.stop()


def write_usage(shm_path: str) -> None:
    """Charge VRAM and count launches in the worker's region, as the shim in a process of
    the worker would."""
    region = ShmRegion.open(shm_path)
    slot = region.join()
    assert region.try_charge(slot, "device", USED_VRAM)
    region.set_gauge(slot, "host_bytes", PAGED_TO_HOST)  # paged out by the shim
    region.add(slot, "launches", LAUNCHES)
    region.add(slot, "throttled_launches", THROTTLED)


def wait_for_usage(control_plane: ControlPlane) -> None:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        worker = next(w for w in control_plane.workers() if w["name"] == WORKER)
        if worker["usage"] and worker["usage"]["launches"] == LAUNCHES:
            return
        time.sleep(0.05)
    raise AssertionError(f"the agent did not read {WORKER}'s usage within {SETTLE_S} s")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two nodes of four H100s, a quarter full, plus one worker of this process with usage."""
    with running_stack(tmp_path_factory.mktemp("small"), 2, 4) as stack:
        created = stack.control_plane.create_worker(
            WorkerRequest(
                tflops_request="50",
                vram_request="4Gi",
                tflops_limit="100",
                vram_limit="4Gi",
                name=WORKER,
                pid=os.getpid(),
                command=("python", "train.py"),
            )
        )
        write_usage(created["env"]["TF_SHM_PATH_0"])
        wait_for_usage(stack.control_plane)
        yield stack


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sixty nodes of eight H100s: more nodes than a page lists, more GPUs than are unfolded."""
    with running_stack(tmp_path_factory.mktemp("large"), 60, 8) as stack:
        yield stack


def test_page_shows_pools_gpus_and_the_worker_with_its_usage(
    small: Stack, browser: Browser
) -> None:
    page = browser.dom(f"{small.url}/")
    api = small.api()
    assert page.one("id", "alert").attrs.get("hidden") is not None
    assert "live" in page.one("id", "status").text()

    [pool] = api["pools"]
    pool_card = page.one("data-pool", pool["name"])
    check_bars(pool_card, pool)
    assert f"{pool['gpus']} GPUs" in pool_card.text()

    assert {e.attrs["data-gpu"] for e in page.all("data-gpu")} == {g["name"] for g in api["gpus"]}
    for gpu in api["gpus"]:
        card = page.one("data-gpu", gpu["name"])
        assert card.tags("h3")[0].text() == gpu["name"]
        check_bars(card, gpu)
        rows = {row.attrs["data-worker"]: row.text() for row in card.all("data-worker")}
        assert set(rows) == set(gpu["workers"])
        for name, text in rows.items():
            if name != f"default/{WORKER}":
                assert "allocation only" in text, "a fleet pod has no usage of its own"

    [worker] = api["workers"]
    assert worker["usage"]["vram"] == USED_VRAM
    [gpu_name] = worker["gpus"]
    row = page.one("data-gpu", gpu_name).one("data-worker", f"default/{WORKER}")
    assert WORKER in row.text()
    assert "50 / 100" in row.text()
    assert "4 GiB / 4 GiB" in row.text()
    assert row.one("data-usage", "vram").text() == "1.5 GiB"
    assert row.one("data-usage", "tiers").text() == "1 GiB GPU · 512 MiB host · 0 disk"
    assert row.one("data-usage", "launches").text() == "1,200"
    assert row.one("data-usage", "throttled").text() == "17 1%"

    totals = header_totals(page)
    assert totals["gpus"] == str(len(api["gpus"]))
    assert totals["nodes"] == "2"
    assert totals["workers"] == str(pool["workers"])
    capacity = pool["capacity"]["tflops"]
    assert totals["tflops"].startswith(
        f"{fmt_number(pool['allocated']['tflops'])} / {fmt_number(capacity)}"
    )


def test_nodes_group_the_gpus_with_their_sums(small: Stack, browser: Browser) -> None:
    page = browser.dom(f"{small.url}/")
    gpus = small.api()["gpus"]
    for node in {gpu["node"] for gpu in gpus}:
        own = [gpu for gpu in gpus if gpu["node"] == node]
        sums = {
            figure: {m: sum(g[figure][m] for g in own) for m in FORMATS} for figure in FIGURE_NAMES
        }
        details = page.one("data-node", node)
        assert details.attrs.get("open") is not None, "a small pool shows its GPUs"
        check_bars(details.tags("summary")[0], sums, compact=True)
        assert {e.attrs["data-gpu"] for e in details.all("data-gpu")} == {g["name"] for g in own}


def test_screenshot_is_a_png_of_the_window(small: Stack, browser: Browser, tmp_path: Path) -> None:
    png = browser.screenshot(f"{small.url}/", tmp_path / "dashboard.png")
    assert png.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", png[16:24]) == WINDOW
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "dashboard.png", SCREENSHOT_COPY)


def test_large_pool_folds_its_nodes_and_lists_fifty(large: Stack, browser: Browser) -> None:
    page = browser.dom(f"{large.url}/")
    gpus = large.api()["gpus"]
    assert len(gpus) == 480
    assert page.all("data-gpu") == [], "folded nodes draw no GPU cards"
    nodes = page.all("data-node")
    assert [n.attrs["data-node"] for n in nodes] == [f"node-{i:05d}" for i in range(50)]
    assert all(n.attrs.get("open") is None for n in nodes)
    [more] = page.tags("button")
    assert more.text() == "Show all 60 nodes (10 more)"
    assert header_totals(page)["gpus"] == "480"
    summary = page.one("data-node", "node-00007").text()
    assert "8 GPUs" in summary, "a folded node's GPUs are counted, not fetched"


def test_filter_in_the_address_opens_only_matching_gpus(large: Stack, browser: Browser) -> None:
    page = browser.dom(f"{large.url}/?filter=NODE-00042-gpu-3")
    assert [n.attrs["data-node"] for n in page.all("data-node")] == ["node-00042"]
    node = page.one("data-node", "node-00042")
    assert node.attrs.get("open") is not None
    assert [g.attrs["data-gpu"] for g in page.all("data-gpu")] == ["node-00042-gpu-3"]
    assert "1 shown" in node.tags("summary")[0].text()


def test_filter_matching_nothing_says_so(large: Stack, browser: Browser) -> None:
    page = browser.dom(f"{large.url}/?filter=no-such-gpu")
    assert page.all("data-node") == []
    assert "Nothing here matches the filter." in page.one("data-pool", "default").text()


# ---- what the control plane cannot be brought to answer ----------------------------------


def summed(gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """What a node or pool row holds about `gpus`: counts and summed figures."""
    workers = {worker for gpu in gpus for worker in gpu["workers"]}
    figures = {f: {m: sum(g[f][m] for g in gpus) for m in FORMATS} for f in FIGURE_NAMES}
    return {"gpus": len(gpus), "workers": len(workers)} | figures


class CannedBackend:
    """A fixed GPU list, its nodes and (unregistered) pools summed from it. Reads fail with
    UnavailableError after `answers` calls each; after the first call, `then_gpus` (when
    given) replaces the GPU list."""

    def __init__(
        self,
        gpus: list[dict[str, Any]],
        *,
        answers: int | None = None,
        then_gpus: list[dict[str, Any]] | None = None,
    ) -> None:
        self._gpus = gpus
        self._calls: dict[str, int] = {}
        self._answers = answers
        self._then_gpus = then_gpus

    def _listed(self, key: str) -> list[dict[str, Any]]:
        calls = self._calls.get(key, 0)
        self._calls[key] = calls + 1
        if self._answers is not None and calls >= self._answers:
            raise UnavailableError("the store is being restored")
        if calls > 0 and self._then_gpus is not None:
            return self._then_gpus
        return self._gpus

    def pools(self) -> list[dict[str, Any]]:
        gpus = self._listed("pools")
        rows = []
        for name in sorted({gpu["pool"] for gpu in gpus}):
            own = [gpu for gpu in gpus if gpu["pool"] == name]
            unregistered = {"default": False, "placementMode": None, "oversubscription": None}
            nodes = {"nodes": len({gpu["node"] for gpu in own})}
            rows.append({"name": name} | unregistered | nodes | summed(own))
        return rows

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        gpus = self._listed(f"nodes of {query.pool}")
        needle = (query.match or "").lower()
        rows = []
        for name in sorted({gpu["node"] for gpu in gpus}):
            own = [gpu for gpu in gpus if gpu["node"] == name]
            words = [name] + [w for g in own for w in (g["name"], g["model"], g["uuid"])]
            words += [worker for gpu in own for worker in gpu["workers"]]
            if own[0]["pool"] == query.pool and any(needle in w.lower() for w in words):
                rows.append({"name": name, "pool": query.pool, "schedulable": True} | summed(own))
        return rows[: query.limit], len(rows)

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return [gpu for gpu in self._listed("gpus") if gpu["node"] in nodes]

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return []

    def pending_workers(self) -> list[dict[str, Any]]:
        return []

    def gpus(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for the GPUs of the nodes it shows only")

    def workers(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for the workers of the nodes it shows only")

    def nodes(self) -> list[dict[str, Any]]:
        raise AssertionError("the page asks for a page of each pool's nodes only")

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


def amounts(tflops: float, vram: int) -> dict[str, float | int]:
    return {"tflops": tflops, "vram": vram}


def canned_gpu(name: str, model: str, workers: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "node": "node-a",
        "uuid": f"GPU-{name}",
        "index": 0,
        "model": model,
        "pool": "lab",
        "numaNode": 0,
        "usedBy": "tensor-fusion",
        "capacity": amounts(989.4, 80 * GIB),
        "virtualCapacity": amounts(1978.8, 112 * GIB),
        "allocated": amounts(0.0, 0),
        "allocatedLimits": amounts(0.0, 0),
        "workers": workers,
    }


def serve(backend: CannedBackend) -> RunningServer:
    return start_in_thread(create_app(backend, ServerSettings(token="canned-token")))


def test_no_gpus_says_how_to_provide_them(browser: Browser) -> None:
    with serve(CannedBackend([])) as server:
        page = browser.dom(f"{server.url}/")
    assert "No GPUs registered" in page.one("id", "content").text()
    assert "tensor-fusion up --fleet" in page.one("id", "content").text()
    assert header_totals(page)["gpus"] == "0"
    assert page.one("id", "alert").attrs.get("hidden") is not None


def test_api_error_is_shown_with_its_message(browser: Browser) -> None:
    with serve(CannedBackend([], answers=0)) as server:
        page = browser.dom(f"{server.url}/")
    alert = page.one("id", "alert")
    assert alert.attrs.get("hidden") is None
    assert "answered with an error" in alert.text()
    assert "HTTP 503 Unavailable: the store is being restored" in alert.text()
    assert page.one("id", "status").text() == "API error"


def test_failure_after_an_answer_keeps_the_last_data_marked_stale(browser: Browser) -> None:
    gpu = canned_gpu("node-a-gpu-0", "H100", [])
    with serve(CannedBackend([gpu], answers=1)) as server:
        page = browser.dom(f"{server.url}/")
    assert page.one("data-gpu", "node-a-gpu-0").text().startswith("node-a-gpu-0")
    assert "stale" in page.tags("body")[0].attrs.get("class", "").split()
    assert "Showing data from" in page.one("id", "alert").text()


def test_page_draws_each_new_answer(browser: Browser) -> None:
    first = canned_gpu("node-a-gpu-0", "H100", [])
    second = canned_gpu("node-a-gpu-1", "H100", []) | {"index": 1}
    with serve(CannedBackend([first], then_gpus=[first, second])) as server:
        page = browser.dom(f"{server.url}/")
    assert [g.attrs["data-gpu"] for g in page.all("data-gpu")] == ["node-a-gpu-0", "node-a-gpu-1"]
    assert header_totals(page)["gpus"] == "2"


def test_names_from_the_api_are_text_not_markup(browser: Browser) -> None:
    model = '<img src="x" onerror="document.title=1">'
    worker = '<b id="injected">ns</b>/pod'
    gpu = canned_gpu("node-a-gpu-0", model, [worker])
    with serve(CannedBackend([gpu])) as server:
        page = browser.dom(f"{server.url}/")
    card = page.one("data-gpu", "node-a-gpu-0")
    assert model in card.text()
    assert card.tags("img") == []
    assert page.all("id", "injected") == []
    assert card.one("data-worker", worker).text().startswith('<b id="injected">ns</b>/pod')
    # A pool the API does not list still shows its GPUs, under the GPUs' pool name.
    assert "not a registered pool" in page.one("data-pool", "lab").text()


class _DroppingHandler(SimpleHTTPRequestHandler):
    """Serves the dashboard's files; every API request has its connection closed unanswered,
    as a server that died would."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/"):
            self.close_connection = True
            return
        if self.path == "/":
            self.path = "/index.html"
        elif self.path.startswith("/static/"):
            self.path = self.path.removeprefix("/static")
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the page, not the log."""


def test_unreachable_api_says_so(browser: Browser) -> None:
    handler = functools.partial(_DroppingHandler, directory=str(STATIC_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.dom(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    alert = page.one("id", "alert")
    assert alert.attrs.get("hidden") is None
    assert "Cannot reach the management API" in alert.text()
    assert "connection failed" in alert.text()
    assert "tensor-fusion up" in alert.text()
    assert page.one("id", "status").text() == "API unreachable"
    assert "No data from the management API yet." in page.one("id", "content").text()
