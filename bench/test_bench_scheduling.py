"""Scheduling decisions per second through the whole framework (PreFilter, Filter, Score,
Reserve, Bind into an in-memory binder), one pod at a time, on generated fleets of 8-GPU
H100 nodes with 60% of their VRAM already allocated.

Pods of one workload ask for the same slice ("replicas"); "varied" gives every pod one of 48
sizes in turn. By default the best node is searched for (only the nodes that can still win
are visited); the baseline in the same run is the full scan of every GPU (full_scan=True),
which the search must match pod for pod, at 5,000 and 10,000 nodes. A second baseline is the
full scan at 1,000 nodes with the pure-Python reference of the GPU kernel swapped in. A
fleet with one node in 50 soft-tainted is timed both ways as well.
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


TAINT_EVERY = 50
"""In the tainted fleets, one node in this many has a PreferNoSchedule taint the pods do not
tolerate."""


def _cluster(nodes: int, *, tainted: bool = False) -> ClusterState:
    fleet = generate_fleet(nodes, 8, "H100", 0.6)
    if tainted:
        for node in fleet.nodes[::TAINT_EVERY]:
            node["spec"]["taints"] = [{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]
    state, report = ClusterState.build(fleet)
    assert not report.problems()
    # As the scheduling loop does after its start: the long-lived state leaves the
    # collector's generations.
    gc.collect()
    gc.freeze()
    return state


def _run(
    benchmark: BenchmarkFixture,
    nodes: int,
    *,
    varied: bool,
    rounds: int = ROUNDS,
    full_scan: bool = False,
    tainted: bool = False,
) -> float:
    cluster = _cluster(nodes, tainted=tainted)
    bound: dict[str, str] = {}

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        bound[pod.name] = node

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    pods = _pods(f"n{nodes}", varied)

    def one() -> None:
        pod = PodInfo.from_dict(next(pods))
        outcome = schedule_one(profile, cluster.view, pod, full_scan=full_scan)
        assert outcome.scheduled, outcome.summary()

    benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=min(50, rounds))  # type: ignore[no-untyped-call]
    assert len(bound) == rounds + min(50, rounds)
    assert benchmark.stats is not None
    median: float = benchmark.stats.stats.median
    return median


def _kind(varied: bool) -> str:
    return "every pod a different size" if varied else "replicas of one size"


def _comparison(nodes: int, varied: bool) -> str:
    label = "varied" if varied else "replicas"
    return f"scheduling one pod at {nodes:,} nodes ({label}), search vs full scan"


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
        target = "5,000" if varied else "10,000"
        context = f" (target {target}; kube-scheduler CI floor 680 plain / 180 extended-resource)"
    record_figure(
        f"scheduling at {nodes:,} nodes x 8 GPUs, 60% full, {_kind(varied)}: "
        f"{1 / median:,.0f} pods/s ({median * 1e6:.0f} us/pod median){context}"
    )
    if nodes == 1_000:
        label = "varied" if varied else "replicas"
        record_median(f"scheduling one pod at 1,000 nodes ({label})", "native", benchmark)
    else:
        record_median(_comparison(nodes, varied), "native", benchmark)


@pytest.mark.benchmark(group="scheduling-throughput")
@pytest.mark.parametrize("varied", [False, True], ids=["replicas", "varied"])
@pytest.mark.parametrize("nodes", [5_000, 10_000])
def test_schedule_full_scan(
    benchmark: BenchmarkFixture,
    nodes: int,
    varied: bool,
    record_median: Recorder,
    record_figure: Callable[[str], None],
) -> None:
    """Baseline: every GPU filtered and scored for every pod (the refit of the changed
    nodes still applies to replicas)."""
    median = _run(benchmark, nodes, varied=varied, rounds=300, full_scan=True)
    record_figure(
        f"full scan at {nodes:,} nodes x 8 GPUs, 60% full, {_kind(varied)}: "
        f"{1 / median:,.0f} pods/s ({median * 1e6:.0f} us/pod median)"
    )
    record_median(_comparison(nodes, varied), "reference", benchmark)


TAINTED = "scheduling one pod at 5,000 nodes (varied, 1 node in 50 soft-tainted)"


@pytest.mark.benchmark(group="scheduling-throughput")
@pytest.mark.parametrize("full_scan", [False, True], ids=["search", "full-scan"])
def test_schedule_tainted(
    benchmark: BenchmarkFixture, full_scan: bool, record_median: Recorder
) -> None:
    """A few nodes with a soft taint: TaintToleration's normalisation reads the feasible
    nodes, which the search must vouch for without falling back to the full scan."""
    rounds = 300 if full_scan else ROUNDS
    _run(benchmark, 5_000, varied=True, rounds=rounds, full_scan=full_scan, tainted=True)
    record_median(TAINTED, "reference" if full_scan else "native", benchmark)


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
    _run(benchmark, 1_000, varied=False, rounds=30, full_scan=True)
    for label in ("replicas", "varied"):
        record_median(f"scheduling one pod at 1,000 nodes ({label})", "reference", benchmark)
