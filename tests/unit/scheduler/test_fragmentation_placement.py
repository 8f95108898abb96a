"""FragmentationAware placement against best-fit (CompactFirst) on a small hand-made cluster,
through the whole scheduler (PreFilter to Reserve), as the packing bench replays a trace.

The cluster: `dense` has two GPUs but 8 cores; `roomy-a` and `roomy-b` have one GPU and 64
cores each. Pods arrive in order: a whole-GPU pod with 32 cores, a half-GPU slice with 2
cores, another whole-GPU pod with 32 cores. Best-fit sees the slice's GPU score tie between
`dense` and `roomy-b`, and CPU scoring sends it to the roomier node: the last GPU that could
hold a 32-core pod is split and the third pod waits. FragmentationAware knows from the first
arrival that whole-GPU pods with 32 cores come, and that `dense` can never host them: it puts
the slice there and keeps `roomy-b`'s GPU whole."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.api.scheduling_template import PlacementMode
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.trace.gpu_specs import lookup_spec
from tensorfusion.trace.openb import Trace, TraceNode, TracePod
from tensorfusion.trace.replay import PodShape, fleet_from_trace, pod_object

V100 = lookup_spec("V100M16")
NODES = (
    TraceNode("dense", cpu_milli=8_000, memory_mib=65_536, gpus=2, model=V100),
    TraceNode("roomy-a", cpu_milli=64_000, memory_mib=262_144, gpus=1, model=V100),
    TraceNode("roomy-b", cpu_milli=64_000, memory_mib=262_144, gpus=1, model=V100),
)
WHOLE = TracePod(
    "whole", cpu_milli=32_000, memory_mib=16_384, num_gpu=1, gpu_milli=1000, gpu_spec=()
)
SLICE = TracePod("slice", cpu_milli=2_000, memory_mib=4_096, num_gpu=1, gpu_milli=500, gpu_spec=())


CPU_ONLY = TracePod("cpu", cpu_milli=16_000, memory_mib=4_096, num_gpu=0, gpu_milli=0, gpu_spec=())


def _placements(
    mode: PlacementMode, arrivals: tuple[TracePod, ...], nodes: tuple[TraceNode, ...] = NODES
) -> list[str | None]:
    """Where each arrival went (its node and GPUs), None for a pod left waiting."""
    trace = Trace(nodes, {})
    cluster, report = ClusterState.build(fleet_from_trace(trace, placement=mode))
    assert not report.problems()
    assert not cluster.problems

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        """Reserve already made the allocator hold the GPUs."""

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    shape = PodShape.of(trace)
    placed: list[str | None] = []
    for number, pod in enumerate(arrivals):
        info = PodInfo.from_dict(pod_object(pod, f"{pod.name}-{number}", shape))
        outcome = schedule_one(profile, cluster.view, info)
        if not outcome.scheduled:
            placed.append(None)
            continue
        allocation = cluster.gpus.allocations.get(info.uid)
        placed.append(f"{outcome.node} {','.join(allocation.gpus) if allocation else '-'}")
    return placed


def test_fragmentation_aware_keeps_a_whole_gpu_that_best_fit_splits() -> None:
    arrivals = (WHOLE, SLICE, WHOLE)
    best_fit = _placements("CompactFirst", arrivals)
    aware = _placements("FragmentationAware", arrivals)
    side_by_side = [
        f"{pod.name:6} best-fit: {fit or 'waits'}; fragmentation-aware: {frag or 'waits'}"
        for pod, fit, frag in zip(arrivals, best_fit, aware, strict=True)
    ]
    print("\n".join(side_by_side))  # shown with -s: the two placements side by side
    assert best_fit[0] == aware[0] == "roomy-a roomy-a-gpu-0"
    assert best_fit[1] == "roomy-b roomy-b-gpu-0", side_by_side
    assert best_fit[2] is None, side_by_side
    assert (aware[1] or "").startswith("dense "), side_by_side
    assert aware[2] == "roomy-b roomy-b-gpu-0", side_by_side


def test_a_pod_without_gpus_leaves_the_cores_a_whole_gpu_pod_needs() -> None:
    """Two nodes of one GPU and 40 cores, one node of 32 cores without GPUs. After a
    whole-GPU pod with 32 cores, a 16-core pod without GPUs arrives: CPU scoring alone sends
    it to the GPU node with the most free cores, and the next whole-GPU pod cannot follow;
    FragmentationAware puts it on the node without GPUs."""
    nodes = (
        TraceNode("gpu-a", cpu_milli=40_000, memory_mib=262_144, gpus=1, model=V100),
        TraceNode("gpu-b", cpu_milli=40_000, memory_mib=262_144, gpus=1, model=V100),
        TraceNode("cpu", cpu_milli=32_000, memory_mib=262_144, gpus=0, model=None),
    )
    arrivals = (WHOLE, CPU_ONLY, WHOLE)
    best_fit = _placements("CompactFirst", arrivals, nodes)
    aware = _placements("FragmentationAware", arrivals, nodes)
    assert best_fit == ["gpu-a gpu-a-gpu-0", "gpu-b -", None]
    assert aware == ["gpu-a gpu-a-gpu-0", "cpu -", "gpu-b gpu-b-gpu-0"]


@pytest.mark.parametrize("mode", ["CompactFirst", "FragmentationAware"])
def test_a_slice_fills_a_half_used_gpu_in_either_mode(mode: PlacementMode) -> None:
    """With nothing to gain elsewhere, both modes finish the half-used GPU: the
    fragmentation-aware score does not scatter slices."""
    placed = _placements(mode, (SLICE, SLICE))
    assert None not in placed
    assert placed[0] == placed[1]
