"""FragmentationAware scores kept from pod to pod: through the whole scheduler, every placement
equals the one scoring every candidate afresh gives, and the memo rescores exactly the
nodes whose GPUs, free cores or memory moved."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler import fragmentation_memo
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fragmentation import (
    FragmentationResult,
    HostRequest,
    PodSide,
    fragmentation_scores,
)
from tensorfusion.scheduler.fragmentation_memo import FragmentationMemo, NodeStamps
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest
from tensorfusion.scheduler.plugins import gpu_resources_fit
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.scheduler.request_mix import RequestClass, RequestMix
from tensorfusion.trace.gpu_specs import lookup_spec
from tensorfusion.trace.openb import Trace, TraceNode, TracePod
from tensorfusion.trace.replay import PodShape, fleet_from_trace, pod_object

MODELS = (lookup_spec("V100M16"), lookup_spec("T4"))
SHARES = (110, 230, 320, 470, 500, 650, 810, 1000)
GIB = 1 << 30


def _placements(seed: int, node_count: int, pod_count: int) -> list[str | None]:
    rng = random.Random(seed)
    nodes = tuple(
        TraceNode(
            f"node-{n}",
            cpu_milli=rng.choice((16_000, 32_000, 96_000)),
            memory_mib=rng.choice((65_536, 262_144)),
            gpus=rng.choice((1, 2, 4, 8)),
            model=rng.choice(MODELS),
        )
        for n in range(node_count)
    )
    arrivals = []
    for number in range(pod_count):
        gpus = rng.choice((0, 1, 1, 1, 1, 2))
        arrivals.append(
            TracePod(
                f"pod-{number}",
                cpu_milli=rng.choice((1_000, 4_000, 12_000)),
                memory_mib=rng.choice((2_048, 16_384)),
                num_gpu=gpus,
                gpu_milli=0 if not gpus else 1000 if gpus > 1 else rng.choice(SHARES),
                gpu_spec=(),
            )
        )
    trace = Trace(nodes, {})
    cluster, _ = ClusterState.build(fleet_from_trace(trace, placement="FragmentationAware"))

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        """Reserve already made the allocator hold the GPUs."""

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    shape = PodShape.of(trace)
    placed: list[str | None] = []
    for number, pod in enumerate(arrivals):
        info = PodInfo.from_dict(pod_object(pod, f"{pod.name}-{number}", shape))
        outcome = schedule_one(profile, cluster.view, info)
        allocation = cluster.gpus.allocations.get(info.uid)
        held = ",".join(allocation.gpus) if allocation else "-"
        placed.append(f"{outcome.node} {held}" if outcome.scheduled else None)
    return placed


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), node_count=st.integers(2, 12))
def test_placements_equal_scoring_every_candidate_afresh(seed: int, node_count: int) -> None:
    kept = _placements(seed, node_count, pod_count=120)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu_resources_fit, "FragmentationMemo", lambda size: FragmentationMemo(0))
        afresh = _placements(seed, node_count, pod_count=120)
    assert kept == afresh
    assert any(kept)


def _three_nodes() -> GpuArrays:
    """Three nodes of two GPUs each, pool 0: one GPU half used, one 90% used."""
    used = np.array([0, 50, 0, 0, 90, 0], np.int64)
    arrays = GpuArrays.zeros(6)
    arrays.node[:] = np.repeat(np.arange(3, dtype=np.int32), 2)
    arrays.pool[:] = 0
    arrays.tflops_capacity[:] = arrays.tflops_virtual[:] = 100_000
    arrays.vram_capacity[:] = arrays.vram_virtual[:] = 100 * GIB
    arrays.tflops_requested[:] = arrays.tflops_limited[:] = used * 1_000
    arrays.vram_requested[:] = arrays.vram_limited[:] = used * GIB
    return arrays


def test_only_nodes_whose_stamp_moved_are_rescored(monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _three_nodes()
    mix = RequestMix()
    half = GpuFitRequest(
        tflops_request=0,
        tflops_limit=0,
        vram_request=50 * GIB,
        vram_limit=50 * GIB,
        percent_request_ppm=500_000,
        percent_limit_ppm=500_000,
    )
    mix.record("pod-0", RequestClass.of(half, 4_000, GIB))
    scored: list[list[int]] = []

    def counted(*args: Any, **kwargs: Any) -> FragmentationResult:
        scored.append(args[2].tolist())
        return fragmentation_scores(*args, **kwargs)

    monkeypatch.setattr(fragmentation_memo, "fragmentation_scores", counted)
    memo = FragmentationMemo(4)
    candidates = np.arange(3, dtype=np.int32)
    no_gpu = np.zeros(6, np.uint8)
    cpu = np.array([8_000, 8_000, 8_000], np.int64)
    memory = np.full(3, 64 * GIB, np.int64)

    def call(versions: list[int], structure: int, cpu: Any) -> FragmentationResult:
        return memo.scores(
            arrays,
            no_gpu,
            candidates,
            pod=HostRequest(0),
            side=PodSide(2_000, GIB, cpu, memory),
            mix=mix.mix(),
            nodes=NodeStamps(np.array(versions, np.int64), structure),
        )

    first = call([0, 0, 0], 1, cpu)
    again = call([0, 0, 0], 1, cpu)
    assert scored == [[0, 1, 2]]
    assert again.score.tolist() == first.score.tolist()
    call([0, 1, 0], 1, cpu)  # node 1's GPUs changed
    call([0, 1, 0], 1, np.array([8_000, 8_000, 2_000], np.int64))  # node 2's cores
    call([0, 1, 0], 2, np.array([8_000, 8_000, 2_000], np.int64))  # GPUs renumbered
    assert scored[1:] == [[1], [2], [0, 1, 2]]
    direct = fragmentation_scores(
        arrays,
        no_gpu,
        candidates,
        pod=HostRequest(0),
        side=PodSide(2_000, GIB, np.array([8_000, 8_000, 2_000], np.int64), memory),
        mix=mix.mix(),
    )
    kept = call([0, 1, 0], 2, np.array([8_000, 8_000, 2_000], np.int64))
    assert kept.score.tolist() == direct.score.tolist()
