"""Scheduling decisions per second through the whole framework (PreFilter, Filter, Score,
Reserve, Bind into an in-memory binder), one pod at a time, on generated fleets of 8-GPU
H100 nodes with 60% of their VRAM already allocated.

The baseline in the same run is the same pipeline at 1,000 nodes with the pure-Python
reference GPU kernel swapped in; kube-scheduler's CI floor (680 pods/s plain, 180 pods/s
extended resources at 5,000 nodes) is printed beside the result for context only."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.gpu_fit_reference import fit_gpus_reference
from tensorfusion.scheduler.plugins import gpu_resources_fit
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config

RESULTS: dict[str, float] = {}
ROUNDS = 2000


def _pods(prefix: str) -> Iterator[dict[str, Any]]:
    for n in itertools.count():
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{prefix}-{n}",
                "namespace": "bench",
                "uid": f"{prefix}-uid-{n}",
                "labels": {"tensor-fusion.ai/enabled": "true"},
                "annotations": {
                    "tensor-fusion.ai/tflops-request": "100",
                    "tensor-fusion.ai/tflops-limit": "200",
                    "tensor-fusion.ai/vram-request": "8Gi",
                    "tensor-fusion.ai/vram-limit": "8Gi",
                },
            },
            "spec": {
                "schedulerName": SCHEDULER_NAME,
                "containers": [{"name": "main", "image": "bench", "resources": {}}],
            },
        }


def _cluster(nodes: int) -> ClusterState:
    state, report = ClusterState.build(generate_fleet(nodes, 8, "H100", 0.6))
    assert not report.problems()
    return state


def _run(benchmark: Any, nodes: int, key: str, rounds: int = ROUNDS) -> None:
    cluster = _cluster(nodes)
    bound: dict[str, str] = {}

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        bound[pod.name] = node

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    pods = _pods(key)

    def one() -> None:
        outcome = schedule_one(profile, cluster.view, PodInfo.from_dict(next(pods)))
        assert outcome.scheduled, outcome.summary()

    benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=min(50, rounds))
    RESULTS[key] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="scheduling-throughput")
@pytest.mark.parametrize("nodes", [1_000, 5_000, 10_000])
def test_schedule_native(benchmark: Any, nodes: int) -> None:
    _run(benchmark, nodes, f"native-{nodes}")


@pytest.mark.benchmark(group="scheduling-throughput")
def test_schedule_reference_kernel_1000(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Baseline: the same pipeline with the pure-Python reference of the GPU kernel."""
    monkeypatch.setattr(gpu_resources_fit, "fit_gpus", fit_gpus_reference)
    _run(benchmark, 1_000, "reference-1000", rounds=30)


def test_report_throughput() -> None:
    """Prints pods/s per fleet size and the ratio against the baseline (run last)."""
    if "native-1000" not in RESULTS:
        pytest.skip("run with --benchmark-only to collect the figures")
    lines = ["", "scheduling decisions per second (median):"]
    for key, median in RESULTS.items():
        lines.append(f"  {key:>16}: {1 / median:10.0f} pods/s  ({median * 1e6:8.1f} us/pod)")
    if "reference-1000" in RESULTS:
        ratio = RESULTS["reference-1000"] / RESULTS["native-1000"]
        lines.append(f"  native vs reference kernel at 1,000 nodes: {ratio:.1f}x faster")
    if "native-5000" in RESULTS:
        lines.append(
            f"  at 5,000 nodes: {1 / RESULTS['native-5000']:.0f} pods/s "
            "(target 5,000; kube-scheduler CI floor 680 plain / 180 extended-resource)"
        )
    print("\n".join(lines))
