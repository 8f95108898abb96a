"""Scheduling decisions per second through the whole framework (PreFilter, Filter, Score,
Reserve, Bind into an in-memory binder), one pod at a time, on generated fleets of 8-GPU
H100 nodes with 60% of their VRAM already allocated.

Pods of one workload ask for the same slice, and GPUResourcesFit then refits only the nodes
that changed since the last identical request: "replicas" measures that case; "varied"
gives every pod one of 48 sizes in turn (more than the plugin remembers), so every pod pays
for a full scan of the cluster. The baseline in the same run is the same pipeline at 1,000
nodes with the pure-Python reference of the GPU kernel swapped in (full scans only).
kube-scheduler's CI floor at 5,000 nodes (680 pods/s for plain pods, 180 for
extended-resource pods) is printed beside the figures for context."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.gpu_fit_reference import fit_gpus_reference
from tensorfusion.scheduler.plugins import gpu_resources_fit
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config

ROUNDS = 2000
Recorder = Callable[[str, str, BenchmarkFixture], None]  # the record_median fixture


def _pods(prefix: str, varied: bool) -> Iterator[dict[str, Any]]:
    for n in itertools.count():
        vram = f"{n % 48 + 1}Gi" if varied else "8Gi"
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
                    "tensor-fusion.ai/vram-request": vram,
                    "tensor-fusion.ai/vram-limit": vram,
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
    # As the scheduling loop does after its start: the long-lived state leaves the
    # collector's generations.
    gc.collect()
    gc.freeze()
    return state


def _run(benchmark: BenchmarkFixture, nodes: int, *, varied: bool, rounds: int = ROUNDS) -> float:
    cluster = _cluster(nodes)
    bound: dict[str, str] = {}

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        bound[pod.name] = node

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    pods = _pods(f"n{nodes}", varied)

    def one() -> None:
        outcome = schedule_one(profile, cluster.view, PodInfo.from_dict(next(pods)))
        assert outcome.scheduled, outcome.summary()

    benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=min(50, rounds))
    assert len(bound) == rounds + min(50, rounds)
    median: float = benchmark.stats.stats.median
    return median


@pytest.mark.benchmark(group="scheduling-throughput")
@pytest.mark.parametrize("varied", [False, True], ids=["replicas", "varied"])
@pytest.mark.parametrize("nodes", [1_000, 5_000, 10_000])
def test_schedule_native(
    benchmark: BenchmarkFixture,
    nodes: int,
    varied: bool,
    record_median: Recorder,
    record_figure: Callable[[str], None],
) -> None:
    median = _run(benchmark, nodes, varied=varied)
    context = ""
    if nodes == 5_000:
        context = " (target 5,000; kube-scheduler CI floor 680 plain / 180 extended-resource)"
    kind = "every pod a different size" if varied else "replicas of one size"
    record_figure(
        f"scheduling at {nodes:,} nodes x 8 GPUs, 60% full, {kind}: {1 / median:,.0f} pods/s "
        f"({median * 1e6:.0f} us/pod median){context}"
    )
    if nodes == 1_000:
        label = "varied" if varied else "replicas"
        record_median(f"scheduling one pod at 1,000 nodes ({label})", "native", benchmark)


@pytest.mark.benchmark(group="scheduling-throughput")
def test_schedule_with_reference_kernel(
    benchmark: BenchmarkFixture, monkeypatch: pytest.MonkeyPatch, record_median: Recorder
) -> None:
    """Baseline: the same pipeline with the pure-Python reference of the GPU kernel, which
    always scans the whole cluster."""
    monkeypatch.setattr(gpu_resources_fit, "fit_gpus", fit_gpus_reference)
    monkeypatch.setattr(
        gpu_resources_fit,
        "refit_gpus",
        lambda arrays, mask, workers, request, **_: fit_gpus_reference(
            arrays, mask, workers, request
        ),
    )
    _run(benchmark, 1_000, varied=False, rounds=30)
    for label in ("replicas", "varied"):
        record_median(f"scheduling one pod at 1,000 nodes ({label})", "reference", benchmark)
