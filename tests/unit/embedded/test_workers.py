"""A worker request becomes a Pod with the contract's annotations; bad fields are named."""

from __future__ import annotations

import json

import pytest

from tensorfusion.agent.worker_pods import is_worker
from tensorfusion.api import annotations as keys
from tensorfusion.embedded.workers import worker_name, worker_pod, worker_view
from tensorfusion.errors import ConfigError
from tensorfusion.server.backend import WorkerRequest

GI = 1 << 30


def test_limits_default_to_requests_and_the_pod_is_ours() -> None:
    request = WorkerRequest(tflops_request="50", vram_request="4Gi", command=("python", "x.py"))
    pod = worker_pod(request, "run-python-abc", "4242@77")
    annotations = pod["metadata"]["annotations"]
    read = keys.parse_workload_request(pod["metadata"]["labels"], annotations)
    assert (read.tflops_limit, read.vram_limit) == (read.tflops_request, 4 * GI)
    assert annotations[keys.GPU_COUNT] == "1"
    assert annotations[keys.WORKER_PIDS] == "4242@77"
    assert json.loads(annotations[keys.WORKER_COMMAND]) == ["python", "x.py"]
    assert keys.GPU_POOL not in annotations
    assert pod["spec"]["schedulerName"] == "tensor-fusion-scheduler"
    assert pod["metadata"]["labels"][keys.ENABLED_LABEL] == "true"
    assert is_worker(pod)
    assert not is_worker({"metadata": {"annotations": {keys.GPU_IDS: "g"}}})


def test_pool_model_and_count_are_carried() -> None:
    request = WorkerRequest(
        tflops_request="10",
        vram_request="1Gi",
        tflops_limit="20",
        vram_limit="2Gi",
        gpu_count=2,
        pool="training",
        gpu_model="H100",
    )
    annotations = worker_pod(request, "w", "")["metadata"]["annotations"]
    assert annotations[keys.GPU_POOL] == "training"
    assert annotations[keys.GPU_MODEL] == "H100"
    assert annotations[keys.GPU_COUNT] == "2"
    assert annotations[keys.TFLOPS_LIMIT] == "20"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"tflops_request": "lots"}, "tflopsRequest"),
        ({"vram_request": "4 gigs"}, "vramRequest"),
        ({"tflops_limit": "-3"}, "tflopsLimit"),
        ({"tflops_request": "100", "tflops_limit": "50"}, "tflopsLimit"),
        ({"vram_limit": "1Mi"}, "vramLimit"),
        ({"gpu_count": 0}, "gpuCount"),
        ({"gpu_count": 100000}, "gpuCount"),
        ({"pool": "Not_A_Pool"}, "pool"),
    ],
)
def test_bad_fields_are_named(request_fields: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"tflops_request": "10", "vram_request": "1Gi"}
    request = WorkerRequest(**(base | request_fields))  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as refused:
        worker_pod(request, "w", "")
    assert refused.value.field == field


def test_names_given_or_generated() -> None:
    assert worker_name(WorkerRequest("1", "1Gi", name="my-job")) == "my-job"
    generated = worker_name(WorkerRequest("1", "1Gi", command=("/usr/bin/Python3.11",)))
    assert generated.startswith("run-python3-11-")
    assert worker_name(WorkerRequest("1", "1Gi")).startswith("run-worker-")
    with pytest.raises(ConfigError) as refused:
        worker_name(WorkerRequest("1", "1Gi", name="Bad Name"))
    assert refused.value.field == "name"


def test_view_of_a_bound_worker() -> None:
    pod = worker_pod(
        WorkerRequest("50", "4Gi", tflops_limit="100", command=("sleep", "9")), "w", "4242@1"
    )
    pod["metadata"] |= {"uid": "u1", "creationTimestamp": "2026-11-28T10:00:00Z"}
    pod["metadata"]["annotations"][keys.GPU_IDS] = "n-g3"
    pod["spec"]["nodeName"] = "n"
    usage = {"vram": GI, "processes": 1}
    view = worker_view(pod, {"n-g3": 3}, usage)
    assert view["phase"] == "Running"
    assert view["gpus"] == ["n-g3"]
    assert view["gpuIndices"] == [3]
    assert view["request"] == {"tflops": 50.0, "vram": 4 * GI}
    assert view["limit"] == {"tflops": 100.0, "vram": 4 * GI}
    assert view["pids"] == [4242]
    assert view["command"] == ["sleep", "9"]
    assert view["usage"] == usage
    pending = worker_view(worker_pod(WorkerRequest("1", "1Gi"), "p", ""), {}, None)
    assert pending["phase"] == "Pending"
    assert pending["gpus"] == []
    assert pending["usage"] is None
