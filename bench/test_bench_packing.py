"""Packing quality on a production GPU-sharing trace (Alibaba's openb, used by "Beware of
Fragmentation", Weng et al., USENIX ATC 2023), with the paper's inflation protocol: each pod
list is shuffled with a seed and topped up by drawing again with replacement, and pods are
submitted one by one, never deleted, until the GPU demand that has arrived reaches 130% of
the cluster's GPUs. Each pod goes through the whole scheduler (PreFilter to Bind, the same
in-process path as test_bench_scheduling.py), and each one placed keeps its GPUs.

Printed per pod list and placement mode: the share of GPU capacity allocated (gpu_milli
placed / GPUs x 1000, mean over the seeds) as arrived demand passes 80..130%, the capacity
left unallocated at 130% (in GPUs) and the GPUs left idle, the median scheduling time per
pod, and the paper's published means at 130% beside ours (the paper's figures, not
measured here).

Under oversubscription (tflopsOversellRatio 200%, VRAM expansion to host memory 100%) a
pod's limits are its trace share and its requests half of it; the same arrivals, replayed to
130% of the virtual capacity, are placed with and without it, and the tasks placed compared
(on the first seed).

Environment: TF_OPENB_DIR, the trace directory (default ../shared/data/openb beside the
repository); TF_OPENB_SEEDS, the seeds ("42-51" by default; "42" for a quick run)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.api.scheduling_template import PlacementMode
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.trace.openb import DIR_ENV, MILLI, POD_LIST_PREFIX, Trace, read_trace, trace_dir
from tensorfusion.trace.replay import (
    NO_OVERSUBSCRIPTION,
    PodShape,
    fleet_from_trace,
    inflated,
    pod_object,
)

SEEDS_ENV = "TF_OPENB_SEEDS"
CHECKPOINTS = (80, 90, 100, 110, 120, 130)
"""Arrived GPU demand, % of capacity, at which the allocation is read."""
ARRIVAL = Fraction(CHECKPOINTS[-1], 100)
OVERSUBSCRIPTION = Oversubscription(
    tflopsOversellRatio=200, vramExpandToHostMem=100, vramExpandToHostDisk=0
)
OVERSOLD_REQUESTS = Fraction(1, 2)
"""Requests as a share of limits under OVERSUBSCRIPTION: limits at 200% hold them all."""
PAPER_AT_130 = {
    "default": {"FGD": 95.39, "Best-fit": 93.08},
    "gpushare100": {"FGD": 86.90, "Best-fit": 85.01},
}
"""Allocation % at 130% arrived, means over 10 seeds as published in the paper."""
MODES: tuple[PlacementMode, ...] = get_args(PlacementMode)


def _trace_dir() -> Path:
    return trace_dir(default=Path(__file__).resolve().parents[2] / "shared" / "data" / "openb")


def _seeds() -> list[int]:
    text = os.environ.get(SEEDS_ENV, "42-51")
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def _pod_lists() -> list[str]:
    found = sorted(_trace_dir().glob(f"{POD_LIST_PREFIX}*.csv"))
    return [path.stem.removeprefix(POD_LIST_PREFIX) for path in found]


@pytest.fixture(scope="module")
def trace() -> Trace:
    directory = _trace_dir()
    if not directory.is_dir():
        pytest.skip(f"no trace at {directory} (set {DIR_ENV})")
    return read_trace(directory)


@dataclass
class Replay:
    """One seed's run: allocation % at each checkpoint, and what was placed."""

    allocation: dict[int, float] = field(default_factory=dict)
    gpu_tasks: int = 0
    """Pods with GPUs placed."""
    allocated_milli: int = 0
    idle_gpus: int = 0
    seconds: list[float] = field(default_factory=list)
    """Scheduling time of each pod."""


def _replay(
    trace: Trace,
    pods: str,
    mode: PlacementMode,
    seed: int,
    *,
    oversubscription: Oversubscription = NO_OVERSUBSCRIPTION,
    requests: Fraction = Fraction(1),
    until: Fraction = ARRIVAL,
) -> Replay:
    fleet = fleet_from_trace(trace, oversubscription=oversubscription, placement=mode)
    cluster, report = ClusterState.build(fleet)
    assert not report.problems()
    assert not cluster.problems

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        """Binding changes nothing more: Reserve already made the allocator hold the GPUs."""

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    shape = PodShape.of(trace, requests)
    capacity = trace.gpu_capacity_milli
    result, arrived = Replay(), 0
    checkpoints = [Fraction(point, 100) * capacity for point in CHECKPOINTS if point <= until * 100]
    for number, pod in enumerate(inflated(trace.pod_lists[pods], capacity, until, seed)):
        info = PodInfo.from_dict(pod_object(pod, f"{pod.name}-{number}", shape))
        start = time.perf_counter()
        outcome = schedule_one(profile, cluster.view, info)
        result.seconds.append(time.perf_counter() - start)
        arrived += pod.gpu_demand_milli
        if outcome.scheduled and pod.num_gpu:
            result.gpu_tasks += 1
            result.allocated_milli += pod.gpu_demand_milli
        while checkpoints and arrived >= checkpoints[0]:
            point = round(checkpoints.pop(0) * 100 / capacity)
            result.allocation[point] = 100 * result.allocated_milli / capacity
    result.idle_gpus = int(np.count_nonzero(cluster.gpus.gpu_workers() == 0))
    return result


def _median_ms(runs: list[Replay]) -> float:
    return 1e3 * statistics.median(second for run in runs for second in run.seconds)


@pytest.mark.benchmark(group="packing-openb")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pods", _pod_lists() or ["default"])
def test_packing(
    benchmark: BenchmarkFixture,
    trace: Trace,
    pods: str,
    mode: PlacementMode,
    record_figure: Callable[[str], None],
) -> None:
    seeds = _seeds()
    runs: list[Replay] = benchmark.pedantic(
        lambda: [_replay(trace, pods, mode, seed) for seed in seeds], rounds=1, iterations=1
    )
    gpus = trace.gpu_capacity_milli // MILLI
    means = {
        point: statistics.fmean(run.allocation[point] for run in runs) for point in CHECKPOINTS
    }
    at_end = [run.allocation[CHECKPOINTS[-1]] for run in runs]
    unallocated = statistics.fmean(gpus - run.allocated_milli / MILLI for run in runs)
    idle = statistics.fmean(run.idle_gpus for run in runs)
    paper = ", ".join(f"{name} {value:.2f}" for name, value in PAPER_AT_130.get(pods, {}).items())
    record_figure(
        f"openb {pods} {mode} ({len(seeds)} seed{'s' * (len(seeds) != 1)}): allocation % at "
        + ", ".join(f"{point}%: {means[point]:.2f}" for point in CHECKPOINTS)
        + f" (130% range {min(at_end):.2f}-{max(at_end):.2f}); unallocated at 130%: "
        f"{unallocated:.1f} of {gpus} GPUs, {idle:.0f} idle; {_median_ms(runs):.2f} ms/pod "
        f"median; paper at 130% (published): {paper or 'none'}"
    )
    # The replay must have reached every checkpoint and placed work; its level is reported.
    assert all(len(run.allocation) == len(CHECKPOINTS) for run in runs)
    assert all(run.gpu_tasks > 0 for run in runs)


@pytest.mark.benchmark(group="packing-openb-oversubscription")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pods", _pod_lists() or ["default"])
def test_packing_oversubscribed(
    benchmark: BenchmarkFixture,
    trace: Trace,
    pods: str,
    mode: PlacementMode,
    record_figure: Callable[[str], None],
) -> None:
    """The same arrivals to 130% of the virtual TFLOPS (260% of the physical), placed on the
    pool as the trace had it (requests = limits) and oversubscribed (requests half); on the
    first seed only, as each run is twice as long and there are two."""
    seeds = _seeds()[:1]
    until = ARRIVAL * OVERSUBSCRIPTION.tflops_oversell_ratio / 100
    plain = [_replay(trace, pods, mode, seed, until=until) for seed in seeds]

    def oversold() -> list[Replay]:
        return [
            _replay(
                trace,
                pods,
                mode,
                seed,
                oversubscription=OVERSUBSCRIPTION,
                requests=OVERSOLD_REQUESTS,
                until=until,
            )
            for seed in seeds
        ]

    runs: list[Replay] = benchmark.pedantic(oversold, rounds=1, iterations=1)
    before = statistics.fmean(run.gpu_tasks for run in plain)
    after = statistics.fmean(run.gpu_tasks for run in runs)
    limits = statistics.fmean(run.allocated_milli / MILLI for run in runs)
    record_figure(
        f"openb {pods} {mode} oversubscribed (TFLOPS 200%, VRAM +100% host memory, requests "
        f"= half the limits; arrivals to {float(until) * 100:.0f}%): {after:.0f} GPU tasks placed "
        f"vs {before:.0f} without ({after / before:.2f}x, {after - before:+.0f}); limits placed "
        f"{limits:.0f} GPUs' worth of {trace.gpu_capacity_milli // MILLI}; "
        f"{_median_ms(runs):.2f} ms/pod median (without: {_median_ms(plain):.2f})"
    )
    assert after > 0
    assert before > 0
