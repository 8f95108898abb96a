"""Bad pods are unschedulable with a reason naming the annotation or field, never an
exception; the cluster is left untouched."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.scheduler.simulate import simulate
from tests.unit.scheduler.cluster_builders import gpu, gpu_node, node, pool, tf_pod, two_gpu_nodes


@pytest.fixture
def cluster() -> ClusterState:
    return two_gpu_nodes(gpus_per_node=2)


def _simulate(cluster: ClusterState, pod: dict[str, Any]) -> dict[str, Any]:
    return simulate(build_profiles(default_config())[SCHEDULER_NAME], cluster, pod)


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({"vram_request": "lots"}, "tensor-fusion.ai/vram-request"),
        ({"tflops_request": "-5"}, "tensor-fusion.ai/tflops-request"),
        ({"tflops_request": "200", "tflops_limit": "100"}, "tensor-fusion.ai/tflops-limit"),
        ({"vram_request": "8Gi", "gpupool": "nowhere"}, "tensor-fusion.ai/gpupool"),
        ({"vram_request": "8Gi", "gpu_count": "3"}, "tensor-fusion.ai/gpu-count"),
        ({"vram_request": "8Gi", "gpu_count": "many"}, "tensor-fusion.ai/gpu-count"),
        ({"vram_request": "8Gi", "gpu_model": "Z9000"}, "tensor-fusion.ai/gpu-model"),
        ({"vram_request": "8Gi", "qos": "urgent"}, "tensor-fusion.ai/qos"),
    ],
)
def test_bad_annotations_are_reasons_not_exceptions(
    cluster: ClusterState, annotations: dict[str, str], named: str
) -> None:
    before = cluster.gpus.snapshot()
    result = _simulate(cluster, tf_pod("bad", **annotations))
    assert not result["schedulable"]
    assert named in result["diagnosis"]["message"], result["diagnosis"]
    assert cluster.gpus.snapshot() == before


def test_the_diagnosis_counts_nodes_per_reason(cluster: ClusterState) -> None:
    result = _simulate(cluster, tf_pod("huge", vram_request="81Gi", tflops_request="1"))
    assert result["diagnosis"]["reasons"] == [
        {"plugin": "GPUResourcesFit", "nodes": 2, "reason": "insufficient VRAM on every GPU"}
    ]
    assert result["diagnosis"]["message"].startswith("0/2 nodes are available: 2 nodes:")


def test_unsupported_pod_features_are_reported_not_ignored(cluster: ClusterState) -> None:
    pod = tf_pod("spread", vram_request="8Gi")
    pod["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
    ]
    result = _simulate(cluster, pod)
    assert not result["schedulable"]
    assert "topologySpreadConstraints" in result["diagnosis"]["message"]


def test_a_pod_pinned_to_a_node_goes_there_or_nowhere(cluster: ClusterState) -> None:
    pod = tf_pod("pinned", vram_request="8Gi")
    pod["spec"]["nodeName"] = "n2"
    assert _simulate(cluster, pod)["node"] == "n2"
    pod["spec"]["nodeName"] = "n9"
    result = _simulate(cluster, pod)
    assert not result["schedulable"]
    assert result["diagnosis"]["reasons"][0]["plugin"] == "NodeName"


def test_taints_and_selectors_are_honoured() -> None:
    tainted = node("n1")
    tainted["spec"]["taints"] = [{"key": "dedicated", "value": "infer", "effect": "NoSchedule"}]
    labelled = node("n2")
    labelled["metadata"]["labels"]["zone"] = "b"
    state, _ = ClusterState.build(
        Fleet(
            nodes=[tainted, labelled, node("n3")],
            gpu_nodes=[gpu_node(n) for n in ("n1", "n2", "n3")],
            gpus=[gpu(f"{n}-gpu-0", n) for n in ("n1", "n2", "n3")],
            pools=[pool()],
            pods=[],
            templates=[],
        )
    )
    pod = tf_pod("picky", vram_request="8Gi")
    pod["spec"]["nodeSelector"] = {"zone": "b"}
    assert _simulate(state, pod)["node"] == "n2"
    pod["spec"]["nodeSelector"] = {"zone": "c"}
    assert not _simulate(state, pod)["schedulable"]
    del pod["spec"]["nodeSelector"]
    pod["spec"]["nodeName"] = "n1"
    result = _simulate(state, pod)
    assert not result["schedulable"]
    assert "dedicated" in result["diagnosis"]["message"]
    pod["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert _simulate(state, pod)["node"] == "n1"


def test_gpus_of_the_device_plugin_are_never_shared() -> None:
    state, _ = ClusterState.build(
        Fleet(
            nodes=[node("n1")],
            gpu_nodes=[gpu_node("n1")],
            gpus=[gpu("n1-gpu-0", "n1", usedBy="nvidia-device-plugin")],
            pools=[pool()],
            pods=[],
            templates=[],
        )
    )
    result = _simulate(state, tf_pod("p", vram_request="1Gi"))
    assert not result["schedulable"]
    assert "device plugin" in result["diagnosis"]["message"]


def test_native_gpu_pods_take_whole_gpus_away_from_the_pool() -> None:
    native = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer", "namespace": "default", "uid": "native-1"},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "1"},
                        "requests": {"nvidia.com/gpu": "1"},
                    },
                }
            ],
        },
    }
    state, _ = ClusterState.build(
        Fleet(
            nodes=[node("n1", **{})],
            gpu_nodes=[gpu_node("n1")],
            gpus=[gpu("n1-gpu-0", "n1", index=0), gpu("n1-gpu-1", "n1", index=1)],
            pools=[pool()],
            pods=[native],
            templates=[],
        )
    )
    result = _simulate(state, tf_pod("p", vram_request="1Gi", gpu_count="2"))
    assert not result["schedulable"]
    assert _simulate(state, tf_pod("q", vram_request="1Gi"))["gpus"] == ["n1-gpu-0"]
