"""`GET /api/workers` from the controller in the API-server emulator: a pod its scheduler
bound is listed with the usage a node agent recorded in GreptimeDB, and without usage when
GreptimeDB is down. GreptimeDB is its stand-in (tests/unit/metrics/greptime_standin.py), since
none can run here; the agent's rows come from real shared regions and the real recorder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.controller.control_plane import Controller
from tensorfusion.controller.flags import ControllerFlags
from tensorfusion.errors import ConfigError
from tensorfusion.metrics import greptime_env
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import (
    RunningController,
    fleet_store,
    guide_pod,
    running_controller,
    wait_for,
)
from tests.kube.runner import KubeApi
from tests.unit.controller.usage_agent import RecordingAgent, greptime_sink
from tests.unit.metrics.greptime_standin import Server, StandIn
from tests.unit.scheduler.cluster_builders import GI

pytestmark = pytest.mark.timing  # waits for the scheduler to bind the pod


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with fleet_store(kube_api.kubeconfig, nodes=1, gpus_per_node=2) as store:
        yield store


@pytest.fixture
def greptime(monkeypatch: pytest.MonkeyPatch) -> Server:
    """The stand-in, not started yet, and the GREPTIME_* variables the chart would give the
    controller to reach it."""
    server = Server(StandIn(db="tf_metrics"))
    for name, value in server.state.environ().items():
        monkeypatch.setenv(name, value)
    return server


def bound_pod(store: KubeStore, name: str) -> dict[str, Any]:
    store.create(guide_pod(name))

    def bound() -> dict[str, Any] | None:
        pod = store.get("Pod", name, "default")
        return pod if pod["spec"].get("nodeName") else None

    return wait_for(f"{name} to be bound", bound)


def listed(controller: RunningController) -> dict[str, Any]:
    with controller.http() as http:
        answer = http.get("/api/workers")
    assert answer.status_code == 200, answer.text
    (worker,) = answer.json()["workers"]
    return dict(worker)


@contextmanager
def recorded(
    store: KubeStore, standin: StandIn, root: Path, pod: dict[str, Any], **usage: int
) -> Iterator[str]:
    """`usage` recorded for a process of `pod` on its GPU, as its node's agent records it;
    the GPU's name."""
    agent = RecordingAgent(root, greptime_sink(standin), store.list("GPU"))
    try:
        agent.place(pod)
        (gpu,) = pod["metadata"]["annotations"][GPU_IDS].split(",")
        agent.run(pod, gpu, **usage)
        agent.record(time.time_ns())
        yield gpu
    finally:
        agent.close()


def test_a_bound_pod_is_listed_with_its_recorded_usage(
    greptime: Server, store: KubeStore, tmp_path: Path, kube_api: KubeApi
) -> None:
    with greptime as standin, running_controller(kube_api.kubeconfig, tmp_path / "s") as running:
        pod = bound_pod(store, "r9")
        usage = {"vram": 3 * GI, "throttled_launches": 2}
        with recorded(store, standin, tmp_path / "regions", pod, **usage) as gpu:
            worker = listed(running)
        assert standin.violations == []
    assert (worker["name"], worker["namespace"]) == ("r9", "default")
    assert worker["node"] == pod["spec"]["nodeName"]
    assert worker["gpus"] == [gpu]
    assert worker["gpuIndices"] == [store.get("GPU", gpu)["status"]["index"]]
    assert worker["limit"] == {"tflops": 100.0, "vram": 16 * GI}
    assert worker["usage"]["vram"] == 3 * GI
    assert worker["usage"]["throttledLaunches"] == 2


def test_with_greptimedb_down_the_pod_is_listed_without_usage(
    greptime: Server, store: KubeStore, tmp_path: Path, kube_api: KubeApi
) -> None:
    with running_controller(kube_api.kubeconfig, tmp_path / "s") as running:
        with greptime as standin:
            pod = bound_pod(store, "r9")
            with recorded(store, standin, tmp_path / "regions", pod, vram=GI):
                assert listed(running)["usage"]["vram"] == GI
            # GreptimeDB was down when the controller started: its metricsTTL comes later.
            wait_for(
                "metricsTTL set once GreptimeDB is up",
                lambda: any("'ttl'" in sql for sql in list(standin.statements)) or None,
            )
        # The stand-in has stopped: GreptimeDB went away under the running controller.
        worker = listed(running)
    assert worker["uid"] == pod["metadata"]["uid"]
    assert worker["phase"] == "Running"
    assert worker["usage"] is None


def test_a_bad_greptime_variable_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, store: KubeStore, tmp_path: Path, kube_api: KubeApi
) -> None:
    monkeypatch.setenv(greptime_env.HOST, "greptime.example")
    monkeypatch.setenv(greptime_env.PORT, "4000x")
    flags = ControllerFlags(kubeconfig=kube_api.kubeconfig, state_dir=tmp_path / "s")
    controller = Controller(flags)
    with pytest.raises(ConfigError) as refused:
        controller.start()
    assert refused.value.field == greptime_env.PORT
    assert not (tmp_path / "s").exists()  # nothing was opened
