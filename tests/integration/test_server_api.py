"""The management API over HTTP (uvicorn on loopback) against the real embedded control plane
on a generated fleet: the guide's R9 curl, the read endpoints, the worker life cycle, and the
bad input of each."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.app import create_app
from tensorfusion.server.runner import RunningServer, start_in_thread
from tensorfusion.server.settings import ServerSettings

pytestmark = pytest.mark.timing

R9 = Path(__file__).parents[1] / "fixtures" / "guide" / "r09-simulate-pod.yaml"
NODES = [f"node-{i:05d}" for i in range(4)]
WORKER = {"tflopsRequest": 50, "vramRequest": "4Gi", "command": ["python", "train.py"]}


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet = generate_fleet(nodes=4, gpus_per_node=8, model="H100", fill=0.3, seed=5)
    path.write_text(fleet.to_yaml())
    return path


@pytest.fixture
def plane(tmp_path: Path, fleet_file: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(
        ControlPlaneConfig(state_dir=tmp_path / "state", fleet=fleet_file, agent_interval_s=0.05)
    )
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def server(plane: ControlPlane) -> Iterator[RunningServer]:
    with start_in_thread(create_app(plane, ServerSettings(token=plane.token))) as running:
        yield running


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def auth(plane: ControlPlane) -> dict[str, str]:
    return {"Authorization": f"Bearer {plane.token}"}


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process to stand for a worker's command."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process
    process.kill()
    process.wait()


def simulate(api: httpx.Client, body: str | bytes, content_type: str) -> httpx.Response:
    return api.post("/api/simulate-schedule", content=body, headers={"Content-Type": content_type})


def r9_with(**annotations: str) -> str:
    pod = yaml.safe_load(R9.read_text())
    pod["metadata"]["annotations"] |= annotations
    return json.dumps(pod)


# --- simulate ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_guides_r9_curl_works_byte_for_byte(server: RunningServer, api: httpx.Client) -> None:
    before = api.get("/api/allocation").json()
    done = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{server.url}/api/simulate-schedule",
            "-H", "Content-Type: application/yaml", "--data-binary", f"@{R9}",
        ],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["pod"] == "default/test-pod"
    assert report["schedulable"] is True
    assert report["node"] in NODES
    assert len(report["gpus"]) == 1
    assert report["gpus"][0].startswith(report["node"] + "-gpu-")
    assert [s["plugin"] for s in report["filterStages"]][-2:] == [
        "GPUResourcesFit",
        "GPUNetworkTopologyAware",
    ]
    assert report["topNodes"][0]["node"] == report["node"]
    assert api.get("/api/allocation").json() == before  # simulate changes nothing


def test_a_json_pod_gets_the_same_report_as_its_yaml(api: httpx.Client) -> None:
    from_yaml = simulate(api, R9.read_bytes(), "application/yaml")
    from_json = simulate(api, json.dumps(yaml.safe_load(R9.read_text())), "application/json")
    assert from_yaml.status_code == from_json.status_code == 200
    assert from_json.json() == from_yaml.json()


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"apiVersion: v1\nkind: [Pod\n", "application/yaml", "malformed YAML"),
        (b'{"apiVersion": "v1", "kind": "Pod",', "application/json", "malformed YAML"),
        (b"kind: Deployment\nmetadata: {}\nspec: {}\n", "application/yaml", "must be Pod"),
        (R9.read_bytes(), "text/plain", "not supported"),
    ],
)
def test_a_body_that_is_not_a_pod_is_400(
    api: httpx.Client, body: bytes, content_type: str, needle: str
) -> None:
    answer = simulate(api, body, content_type)
    assert answer.status_code == 400
    assert answer.json()["error"] == "BadRequest"
    assert needle in answer.json()["message"]


def test_a_pod_without_tensorfusion_annotations_gets_no_gpu(api: httpx.Client) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec: {containers: []}\n"
    answer = simulate(api, pod, "application/yaml")
    assert answer.status_code == 200
    assert answer.json()["schedulable"] is True
    assert answer.json()["gpus"] == []


def test_an_unknown_pool_is_diagnosed(api: httpx.Client) -> None:
    answer = simulate(api, r9_with(**{"tensor-fusion.ai/gpupool": "nope"}), "application/json")
    assert answer.status_code == 200
    report = answer.json()
    assert report["schedulable"] is False
    assert "pool 'nope' does not exist" in report["diagnosis"]["message"]


def test_a_bad_annotation_is_diagnosed_naming_it(api: httpx.Client) -> None:
    answer = simulate(api, r9_with(**{"tensor-fusion.ai/vram-request": "16Gb"}), "text/yaml")
    assert answer.status_code == 200
    [reason] = answer.json()["diagnosis"]["reasons"]
    assert reason["reason"].startswith("tensor-fusion.ai/vram-request: '16Gb'")


def test_an_unknown_scheduler_is_422_naming_the_field(api: httpx.Client) -> None:
    text = R9.read_text().replace("tensor-fusion-scheduler", "other-scheduler")
    answer = simulate(api, text, "application/yaml")
    assert answer.status_code == 422
    assert answer.json()["field"] == "spec.schedulerName"


def test_an_oversized_body_is_413(api: httpx.Client) -> None:
    body = R9.read_bytes() + b"#" + b"x" * (1 << 20)
    answer = simulate(api, body, "application/yaml")
    assert answer.status_code == 413
    assert answer.json()["error"] == "PayloadTooLarge"


# --- reads ------------------------------------------------------------------------------


def test_inventory_matches_the_fleet(api: httpx.Client) -> None:
    [pool] = api.get("/api/pools").json()["pools"]
    assert (pool["name"], pool["nodes"], pool["gpus"]) == ("default", 4, 32)
    assert pool["capacity"] == {"tflops": 32 * 989.0, "vram": 32 * 80 * (1 << 30)}
    assert 0 < pool["allocated"]["vram"] < pool["capacity"]["vram"]
    nodes = api.get("/api/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == NODES
    gpus = api.get("/api/gpus").json()["gpus"]
    assert len(gpus) == 32
    assert sum(len(g["workers"]) for g in gpus) >= pool["workers"]
    snapshot = api.get("/api/allocation").json()
    assert set(snapshot) == {"gpus", "workersPerNode", "allocations", "gpuWorkers"}
    assert snapshot["gpus"][0]["capacity"] == {"tflops": "989", "vram": "80Gi"}


def test_the_pool_plan_is_served_from_the_store(api: httpx.Client) -> None:
    """The embedded pool selects its declared nodes (AutoSelect): nothing to provision or
    compact, and no agent DaemonSet to roll; each part says why on the plan."""
    plan = api.get("/api/pools/default/plan").json()
    assert plan["pool"] == "default"
    assert plan["actions"] == []
    reasons = {c["type"]: c["reason"] for c in plan["conditions"]}
    assert reasons["Compaction"] == "Disabled"
    assert reasons["AgentRollout"] == "NoAgentRevision"
    missing = api.get("/api/pools/nope/plan")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"


def test_the_plain_allocation_body_is_the_backends_snapshot(
    plane: ControlPlane, api: httpx.Client
) -> None:
    assert api.get("/api/allocation").json() == plane.allocation()


@pytest.mark.parametrize(
    ("query", "keeps"),
    [
        ({"node": NODES[1]}, lambda gpu: gpu["node"] == NODES[1]),
        ({"pool": "default"}, lambda gpu: True),
        ({"pool": "elsewhere"}, lambda gpu: False),
        ({"gpu": f"{NODES[2]}-gpu-3"}, lambda gpu: gpu["name"] == f"{NODES[2]}-gpu-3"),
        ({"node": NODES[0], "gpu": f"{NODES[2]}-gpu-3"}, lambda gpu: False),
    ],
)
def test_an_allocation_filter_keeps_the_selected_gpus_and_what_touches_them(
    api: httpx.Client, query: dict[str, str], keeps: Callable[[dict[str, Any]], bool]
) -> None:
    full = api.get("/api/allocation").json()
    answer = api.get("/api/allocation", params=query)
    assert answer.status_code == 200
    body = answer.json()
    gpus = [gpu for gpu in full["gpus"] if keeps(gpu)]
    names = {gpu["name"] for gpu in gpus}
    assert body["gpus"] == gpus
    assert body["allocations"] == {
        uid: entry for uid, entry in full["allocations"].items() if names & set(entry["gpus"])
    }
    assert body["gpuWorkers"] == {g: w for g, w in full["gpuWorkers"].items() if g in names}
    nodes = {gpu["node"] for gpu in gpus}
    assert body["workersPerNode"] == {n: c for n, c in full["workersPerNode"].items() if n in nodes}


def test_allocation_pages_reassemble_the_snapshot(api: httpx.Client) -> None:
    full = api.get("/api/allocation").json()
    pages = [api.get("/api/allocation", params={"limit": 4}).json()]
    while "continue" in pages[-1]["metadata"]:
        params = {"limit": 4, "continue": pages[-1]["metadata"]["continue"]}
        pages.append(api.get("/api/allocation", params=params).json())
    assert len(pages) == -(-len(full["allocations"]) // 4) > 2
    uids = [uid for page in pages for uid in page["allocations"]]
    assert len(uids) == len(set(uids))
    assert {uid: e for page in pages for uid, e in page["allocations"].items()} == full[
        "allocations"
    ]
    merged: dict[str, list[Any]] = {}
    for page in pages:
        for gpu, workers in page["gpuWorkers"].items():
            merged.setdefault(gpu, []).extend(workers)
    assert merged == full["gpuWorkers"]
    assert (pages[0]["gpus"], pages[0]["workersPerNode"]) == (full["gpus"], full["workersPerNode"])


def test_a_continue_token_is_refused_once_the_allocations_change(
    api: httpx.Client, auth: dict[str, str], sleeper: subprocess.Popen[bytes]
) -> None:
    token = api.get("/api/allocation", params={"limit": 2}).json()["metadata"]["continue"]
    other = api.get("/api/allocation", params={"limit": 2, "node": NODES[0], "continue": token})
    assert other.status_code == 400
    assert other.json()["field"] == "query.continue"
    created = api.post("/api/workers", json=WORKER | {"pid": sleeper.pid}, headers=auth)
    assert created.status_code == 201
    stale = api.get("/api/allocation", params={"limit": 2, "continue": token})
    assert stale.status_code == 410
    assert stale.json()["error"] == "Expired"
    assert stale.json()["field"] == "query.continue"
    # A new list starts over on the changed allocations, the worker's among them.
    fresh = api.get("/api/allocation", params={"limit": 100}).json()
    assert created.json()["uid"] in fresh["allocations"]
    assert fresh["metadata"] == {}


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("limit=0", 422, "query.limit"),
        ("limit=many", 422, "query.limit"),
        ("node=", 422, "query.node"),
        ("limit=2&continue=bm90IGEgdG9rZW4", 400, "query.continue"),
    ],
)
def test_a_bad_allocation_parameter_is_refused_naming_it(
    api: httpx.Client, query: str, status: int, field: str
) -> None:
    answer = api.get(f"/api/allocation?{query}")
    assert answer.status_code == status
    assert answer.json()["field"] == field


def test_health_readiness_and_the_dashboard(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert api.get("/").headers["content-type"].startswith("text/html")


def test_readiness_is_503_once_the_plane_stops(plane: ControlPlane, api: httpx.Client) -> None:
    plane.stop()
    answer = api.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"error": "Unavailable", "message": "not ready: shutting down"}
    assert api.get("/api/pools").status_code == 503
    assert api.get("/healthz").status_code == 200


def non_loopback_address() -> str | None:
    """This host's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_read_from_another_host_needs_the_token(plane: ControlPlane) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    app = create_app(plane, ServerSettings(token=plane.token))
    with start_in_thread(app, host=address) as server, httpx.Client(base_url=server.url) as api:
        refused = api.get("/api/workers")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        token = {"Authorization": f"Bearer {plane.token}"}
        assert api.get("/api/workers", headers=token).status_code == 200


# --- workers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}]
)
def test_creating_a_worker_needs_the_right_token(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    answer = api.post("/api/workers", json=WORKER, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "Unauthorized"
    assert api.get("/api/workers").json() == {"workers": []}


def test_worker_round_trip(
    api: httpx.Client, auth: dict[str, str], sleeper: subprocess.Popen[bytes]
) -> None:
    before = api.get("/api/allocation").json()
    created = api.post("/api/workers", json=WORKER | {"pid": sleeper.pid}, headers=auth)
    assert created.status_code == 201
    worker: dict[str, Any] = created.json()
    name = worker["name"]
    assert worker["phase"] == "Running"
    assert worker["node"] in NODES
    assert worker["request"] == {"tflops": 50.0, "vram": 4 << 30}
    assert worker["limit"] == worker["request"]
    assert worker["pids"] == [sleeper.pid]
    assert worker["command"] == ["python", "train.py"]
    env = worker["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, worker["gpuIndices"]))
    assert env["TF_VRAM_LIMIT_0"] == str(4 << 30)

    [listed] = api.get("/api/workers").json()["workers"]
    assert listed["name"] == name
    assert "env" not in listed
    [gpu] = [g for g in api.get("/api/gpus").json()["gpus"] if g["name"] == worker["gpus"][0]]
    assert f"{worker['namespace']}/{name}" in gpu["workers"]
    assert worker["uid"] in api.get("/api/allocation").json()["allocations"]

    patched = api.patch(f"/api/workers/{name}", json={"pids": [sleeper.pid]}, headers=auth)
    assert patched.status_code == 200
    assert sleeper.pid in patched.json()["pids"]

    deleted = api.delete(f"/api/workers/{name}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"released": name}
    assert api.get("/api/workers").json() == {"workers": []}
    assert api.get("/api/allocation").json() == before


def test_an_unschedulable_worker_is_409_with_the_diagnosis(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    answer = api.post("/api/workers", json=WORKER | {"vramRequest": "4000Gi"}, headers=auth)
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["error"] == "Unschedulable"
    assert problem["diagnosis"]["schedulable"] is False
    assert problem["diagnosis"]["diagnosis"]["unschedulablePlugins"] == ["GPUResourcesFit"]
    assert api.get("/api/workers").json() == {"workers": []}


def test_a_taken_name_is_409_conflict(api: httpx.Client, auth: dict[str, str]) -> None:
    assert api.post("/api/workers", json=WORKER | {"name": "w"}, headers=auth).status_code == 201
    answer = api.post("/api/workers", json=WORKER | {"name": "w"}, headers=auth)
    assert answer.status_code == 409
    assert answer.json()["error"] == "Conflict"


def amounts(tflops: float, vram_gib: int) -> dict[str, Any]:
    return {"tflops": tflops, "vram": vram_gib << 30}


@pytest.mark.parametrize(
    ("asked", "request_and_limit"),
    [
        ({"tflopsRequest": 50, "vramLimit": "4Gi"}, (amounts(50, 4), amounts(50, 4))),
        ({"tflopsLimit": 50, "vramLimit": "4Gi"}, (amounts(50, 4), amounts(50, 4))),
        ({"tflopsRequest": 20, "vramRequest": "2Gi"}, (amounts(20, 2), amounts(20, 2))),
        (
            {"tflopsRequest": 20, "tflopsLimit": 80, "vramRequest": "2Gi", "vramLimit": "4Gi"},
            (amounts(20, 2), amounts(80, 4)),
        ),
    ],
)
def test_a_worker_request_defaults_to_its_limit_and_back(
    api: httpx.Client,
    auth: dict[str, str],
    sleeper: subprocess.Popen[bytes],
    asked: dict[str, Any],
    request_and_limit: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    answer = api.post("/api/workers", json=asked | {"pid": sleeper.pid}, headers=auth)
    assert answer.status_code == 201, answer.text
    worker = answer.json()
    assert (worker["request"], worker["limit"]) == request_and_limit
    [share] = api.get("/api/allocation").json()["allocations"][worker["uid"]]["shares"]
    assert share["requests"]["vram"] == f"{worker['request']['vram'] >> 30}Gi"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"vramRequest": "8Gi", "vramLimit": "4Gi"}, "vramLimit"),
        ({"tflopsRequest": 80, "tflopsLimit": 20}, "tflopsLimit"),
        ({"tflopsRequest": None, "vramRequest": None, "vramLimit": None}, "tflopsRequest"),
        ({"vramRequest": "4Gb"}, "vramRequest"),
        ({"tflopsRequest": -5}, "tflopsRequest"),
        ({"name": "Bad_Name"}, "name"),
        ({"gpuCount": "2"}, "gpuCount"),
        ({"vramRequest": None}, "vramRequest"),
    ],
)
def test_a_bad_worker_field_is_422_naming_it(
    api: httpx.Client, auth: dict[str, str], change: dict[str, Any], field: str
) -> None:
    answer = api.post("/api/workers", json=WORKER | change, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["error"] == "Invalid"
    assert answer.json()["field"] == field
    assert api.get("/api/workers").json() == {"workers": []}


def test_a_malformed_worker_body_is_400(api: httpx.Client, auth: dict[str, str]) -> None:
    headers = auth | {"Content-Type": "application/json"}
    answer = api.post("/api/workers", content=b'{"tflopsRequest": 5', headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "BadRequest"


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"pids": [1]}), ("DELETE", None)])
def test_an_unknown_worker_is_404(
    api: httpx.Client, auth: dict[str, str], method: str, body: object
) -> None:
    answer = api.request(method, "/api/workers/nobody", json=body, headers=auth)
    assert answer.status_code == 404
    assert answer.json()["error"] == "NotFound"
    assert "nobody" in answer.json()["message"]


def test_metrics_follow_the_workers(
    api: httpx.Client, auth: dict[str, str], sleeper: subprocess.Popen[bytes]
) -> None:
    assert 'tf_workers{phase="Running"} 0.0' in api.get("/metrics").text
    api.post("/api/workers", json=WORKER | {"pid": sleeper.pid}, headers=auth)
    text = api.get("/metrics").text
    assert 'tf_workers{phase="Running"} 1.0' in text
    assert 'tf_pool_gpus{pool="default"} 32.0' in text
    created = 'route="/api/workers",status="201"'
    assert any(created in line for line in text.splitlines())
