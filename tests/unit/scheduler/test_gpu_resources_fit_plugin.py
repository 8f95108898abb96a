"""GPUResourcesFit through the whole pipeline: pools and the default pool, gpu-model,
maxWorkerPerNode, the placement modes and weights, compute-percent requests."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.plugins import gpu_resources_fit
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config, parse_scheduler_config
from tensorfusion.scheduler.simulate import simulate
from tests.unit.scheduler.cluster_builders import gpu, gpu_node, node, pool, template, tf_pod


def _cluster(
    gpus: list[dict[str, Any]],
    *,
    pools: list[dict[str, Any]] | None = None,
    pods: list[dict[str, Any]] | None = None,
    templates: list[dict[str, Any]] | None = None,
) -> ClusterState:
    names = sorted({g["metadata"]["labels"]["tensor-fusion.ai/owner"] for g in gpus})
    state, report = ClusterState.build(
        Fleet(
            nodes=[node(n) for n in names],
            gpu_nodes=[gpu_node(n) for n in names],
            gpus=gpus,
            pools=pools or [pool()],
            pods=pods or [],
            templates=templates or [],
        )
    )
    assert not report.problems()
    assert not state.problems
    return state


def _simulate(
    cluster: ClusterState, pod: dict[str, Any], config: str | None = None
) -> dict[str, Any]:
    parsed = parse_scheduler_config(config) if config else default_config()
    return simulate(build_profiles(parsed)[SCHEDULER_NAME], cluster, pod)


def _holding(
    name: str, gpu_name: str, node_name: str, vram: str, tflops: str = "100"
) -> dict[str, Any]:
    return tf_pod(
        name, node_name=node_name, vram_request=vram, tflops_request=tflops, gpu_ids=gpu_name
    )


def test_pods_go_to_the_pool_they_name_and_others_to_the_default() -> None:
    default = pool("shared")
    default["metadata"]["annotations"] = {"tensor-fusion.ai/is-default-pool": "true"}
    cluster = _cluster(
        [gpu("a-gpu-0", "a", pool="shared"), gpu("b-gpu-0", "b", pool="training")],
        pools=[default, pool("training")],
    )
    assert _simulate(cluster, tf_pod("p", vram_request="1Gi"))["gpus"] == ["a-gpu-0"]
    named = tf_pod("q", vram_request="1Gi", gpupool="training")
    assert _simulate(cluster, named)["gpus"] == ["b-gpu-0"]


def test_without_a_default_pool_a_pod_must_name_one() -> None:
    cluster = _cluster(
        [gpu("a-gpu-0", "a", pool="one"), gpu("b-gpu-0", "b", pool="two")],
        pools=[pool("one"), pool("two")],
    )
    result = _simulate(cluster, tf_pod("p", vram_request="1Gi"))
    assert not result["schedulable"]
    assert (
        "tensor-fusion.ai/gpupool: not set and no pool is the default"
        in (result["diagnosis"]["message"])
    )


def test_gpu_model_selects_matching_gpus_case_insensitively() -> None:
    cluster = _cluster([gpu("a-gpu-0", "a"), gpu("b-gpu-0", "b", gpuModel="L4")])
    assert _simulate(cluster, tf_pod("p", vram_request="1Gi", gpu_model="l4"))["gpus"] == [
        "b-gpu-0"
    ]


def test_max_worker_per_node_counts_pods_on_the_node() -> None:
    cluster = _cluster(
        [gpu("a-gpu-0", "a"), gpu("a-gpu-1", "a", index=1), gpu("b-gpu-0", "b")],
        pods=[_holding("w1", "a-gpu-0", "a", "1Gi"), _holding("w2", "a-gpu-1", "a", "1Gi")],
    )
    config = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: tensor-fusion-scheduler
  pluginConfig:
  - name: GPUResourcesFit
    args: {maxWorkerPerNode: 2}
"""
    # Node a is the fuller one (compact-first), but already runs two workers.
    result = _simulate(cluster, tf_pod("p", vram_request="1Gi"), config)
    assert result["node"] == "b"
    stage = next(s for s in result["filterStages"] if s["plugin"] == "GPUResourcesFit")
    assert (stage["before"], stage["after"]) == (2, 1)
    roomy = config.replace("maxWorkerPerNode: 2", "maxWorkerPerNode: 3")
    assert _simulate(cluster, tf_pod("p", vram_request="1Gi"), roomy)["node"] == "a"
    only_b = tf_pod("p", vram_request="1Gi")
    only_b["spec"]["nodeName"] = "a"
    refused = _simulate(cluster, only_b, config)
    assert refused["diagnosis"]["reasons"] == [
        {"plugin": "GPUResourcesFit", "nodes": 1, "reason": "too many workers on the node"},
        {
            "plugin": "NodeName",
            "nodes": 1,
            "reason": "node(s) didn't match the requested node name",
        },
    ]


def _three_gpus(mode: str | None = None) -> ClusterState:
    """a: one GPU 50% used; b: one GPU 25% used; c: one empty GPU; placement `mode`."""
    return _cluster(
        [gpu("a-gpu-0", "a"), gpu("b-gpu-0", "b"), gpu("c-gpu-0", "c")],
        pools=[pool(template="placement" if mode else None)],
        templates=[template("placement", mode)] if mode else [],
        pods=[
            _holding("x", "a-gpu-0", "a", "40Gi", "494.5"),
            _holding("y", "b-gpu-0", "b", "20Gi", "247.25"),
        ],
    )


def test_compact_first_packs_and_low_load_first_spreads() -> None:
    pod = tf_pod("p", vram_request="8Gi")
    assert _simulate(_three_gpus(), pod)["gpus"] == ["a-gpu-0"]
    assert _simulate(_three_gpus("CompactFirst"), pod)["gpus"] == ["a-gpu-0"]
    assert _simulate(_three_gpus("LowLoadFirst"), pod)["gpus"] == ["c-gpu-0"]


def test_node_compact_gpu_low_load_packs_nodes_and_spreads_within_them() -> None:
    cluster = _cluster(
        [
            gpu("a-gpu-0", "a"),
            gpu("a-gpu-1", "a", index=1),
            gpu("b-gpu-0", "b"),
            gpu("b-gpu-1", "b", index=1),
        ],
        pools=[pool(template="mixed")],
        templates=[template("mixed", "NodeCompactGPULowLoad")],
        pods=[
            _holding("x", "a-gpu-0", "a", "60Gi", "600"),
            _holding("y", "b-gpu-0", "b", "10Gi", "100"),
        ],
    )
    # Node a is fuller, so it wins; within it the emptier GPU is taken.
    assert _simulate(cluster, tf_pod("p", vram_request="8Gi"))["gpus"] == ["a-gpu-1"]


def test_weights_decide_between_vram_and_tflops_packing() -> None:
    # a: VRAM mostly used, TFLOPS free; b: the other way round.
    cluster = _cluster(
        [gpu("a-gpu-0", "a"), gpu("b-gpu-0", "b")],
        pods=[
            _holding("x", "a-gpu-0", "a", "60Gi", "10"),
            _holding("y", "b-gpu-0", "b", "1Gi", "900"),
        ],
    )
    config = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: tensor-fusion-scheduler
  pluginConfig:
  - name: GPUResourcesFit
    args: {vramWeight: VW, tflopsWeight: TW}
"""
    pod = tf_pod("p", vram_request="1Gi", tflops_request="1")
    vram_first = config.replace("VW", "1").replace("TW", "0")
    tflops_first = config.replace("VW", "0").replace("TW", "1")
    assert _simulate(cluster, pod, vram_first)["gpus"] == ["a-gpu-0"]
    assert _simulate(cluster, pod, tflops_first)["gpus"] == ["b-gpu-0"]


def test_compute_percent_is_a_share_of_each_gpu() -> None:
    cluster = _cluster(
        [gpu("a-gpu-0", "a", tflops="100"), gpu("b-gpu-0", "b", tflops="1000")],
        pods=[_holding("x", "b-gpu-0", "b", "1Gi", "960")],
    )
    # 5% of b's 1000 TFLOPS (50) no longer fits next to the 960 held there; 5% of a's fits.
    result = _simulate(cluster, tf_pod("p", vram_request="1Gi", compute_percent_request="5"))
    assert result["gpus"] == ["a-gpu-0"]
    allocation = cluster.gpus.snapshot()["gpuWorkers"]
    assert "a-gpu-0" not in allocation  # simulate reserved nothing


def test_qos_defaults_to_high_for_guaranteed_slices() -> None:
    cluster = _cluster([gpu("a-gpu-0", "a")])
    pod = tf_pod("p", uid="u-1", vram_request="8Gi", tflops_request="100")
    profile = build_profiles(default_config(), lambda *_: None)[SCHEDULER_NAME]
    outcome = schedule_one(profile, cluster.view, PodInfo.from_dict(pod))
    assert outcome.scheduled
    assert cluster.gpus.allocations["u-1"].qos == "high"


def test_answers_brought_up_to_date_node_by_node_place_pods_as_full_scans_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def placements(refit: bool) -> list[tuple[str | None, tuple[str, ...]]]:
        if not refit:
            monkeypatch.setattr(gpu_resources_fit, "REFIT_SHARE", 10**9)
        cluster, _ = ClusterState.build(generate_fleet(30, 8, "H100", 0.5, seed=9))
        profile = build_profiles(default_config(), lambda *_: None)[SCHEDULER_NAME]
        placed = []
        for n in range(300):
            size = ("4Gi", "8Gi", "20Gi")[n % 3]
            pod = tf_pod(f"p{n}", vram_request=size, tflops_request="50", gpu_count="1")
            if n % 7 == 0:
                pod["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": "us-east-1b"}
            outcome = schedule_one(profile, cluster.view, PodInfo.from_dict(pod))
            gpus = outcome.annotations.get("tensor-fusion.ai/gpu-ids", "")
            placed.append((outcome.node, tuple(gpus.split(",")) if gpus else ()))
        monkeypatch.undo()
        return placed

    with_refit = placements(refit=True)
    assert with_refit == placements(refit=False)
    assert sum(node is not None for node, _ in with_refit) > 100
