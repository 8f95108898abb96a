"""A rebuild of many pods in one pass (demands parsed once per distinct set of annotations,
shares once per GPU capacity, columns summed together) restores what rebuilding the same
pods one at a time restores, and its columns equal those that reserving the restored
allocations one at a time leaves."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.scheduler.allocation import RebuildReport
from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet

from .cluster_builders import tf_pod, two_gpu_nodes

GPUS_PER_NODE = 3
GPU_NAMES = [f"n{n}-gpu-{i}" for n in (1, 2) for i in range(GPUS_PER_NODE)]


@st.composite
def _pod(draw: st.DrawFn, number: int) -> dict[str, Any]:
    """A pod that mostly holds GPUs it can: the rest is off in one way or another."""
    gpus = draw(st.lists(st.sampled_from(GPU_NAMES), min_size=1, max_size=2))
    ids = draw(st.sampled_from([",".join(gpus), " , ".join(gpus), "", "gone-gpu", None]))
    notes = {"gpu_count": str(len(gpus))} if ids is not None else {}
    notes |= draw(
        st.fixed_dictionaries(
            {"tflops_request": st.sampled_from(["10", "150", "1000"])},
            optional={
                "tflops_limit": st.sampled_from(["20", "300"]),
                "vram_request": st.sampled_from(["1Gi", "30Gi", "90Gi"]),
                "vram_limit": st.sampled_from(["2Gi", "60Gi"]),
                "compute_percent_request": st.sampled_from(["25", "50", "250"]),
                "gpu_count": st.sampled_from(["1", "x"]),
                "qos": st.sampled_from(["low", "high", "critical", "urgent"]),
            },
        )
    )
    if ids is not None:
        notes["gpu_ids"] = ids
    uid = draw(st.sampled_from(["uid-a", "uid-b", "uid-c", "uid-d", "uid-e", None]))
    node_name = draw(st.sampled_from(["n1", "n2", None]))
    body = tf_pod(f"p-{number}", uid=uid, node_name=node_name, **notes)
    if uid is None:
        del body["metadata"]["uid"]
    if phase := draw(st.sampled_from(["Running", "Pending", "Succeeded", "Failed", None])):
        body["status"] = {"phase": phase}
    return body


pods = st.integers(min_value=0, max_value=12).flatmap(
    lambda count: st.tuples(*(_pod(number) for number in range(count))).map(list)
)


def _state(allocator: GpuAllocator, nodes: int) -> dict[str, Any]:
    columns = allocator.arrays()
    return {
        "allocations": allocator.allocations,
        "columns": {name: getattr(columns, name).tolist() for name in columns.__dataclass_fields__},
        "gpu_workers": allocator.gpu_workers().tolist(),
        "node_workers": allocator.node_workers(nodes).tolist(),
        "snapshot": allocator.snapshot(),
    }


def _one_at_a_time(allocator: GpuAllocator, bodies: list[dict[str, Any]]) -> RebuildReport:
    """The reports of rebuilding each pod alone, merged as one rebuild reports them."""
    merged = RebuildReport()
    for body in bodies:
        report = allocator.rebuild([body])
        merged.restored += report.restored
        merged.vanished += report.vanished
        merged.invalid += report.invalid
        merged.overcommitted = report.overcommitted
    return merged


@settings(max_examples=60, deadline=None)
@given(pods, st.integers(min_value=0, max_value=12))
def test_one_pass_restores_what_one_pod_at_a_time_restores(
    bodies: list[dict[str, Any]], split: int
) -> None:
    together = two_gpu_nodes(GPUS_PER_NODE).gpus
    alone = two_gpu_nodes(GPUS_PER_NODE).gpus
    # Two rebuilds: the second skips the pods the first restored.
    reports = [together.rebuild(bodies[:split]), together.rebuild(bodies)]
    assert reports == [_one_at_a_time(alone, bodies[:split]), _one_at_a_time(alone, bodies)]
    assert _state(together, 2) == _state(alone, 2)


def test_a_generated_fleet_restores_what_one_pod_at_a_time_restores() -> None:
    fleet = generate_fleet(40, 8, "H100", 0.8, seed=3)
    empty = Fleet(nodes=fleet.nodes, gpu_nodes=fleet.gpu_nodes, gpus=fleet.gpus, pools=fleet.pools)
    built, report = ClusterState.build(fleet)
    alone, _ = ClusterState.build(empty)
    assert report.restored == len(fleet.pods) > 100
    assert report == _one_at_a_time(alone.gpus, fleet.pods)
    assert _state(built.gpus, 40) == _state(alone.gpus, 40)


@settings(max_examples=60, deadline=None)
@given(pods)
def test_summed_columns_equal_reserving_one_at_a_time(bodies: list[dict[str, Any]]) -> None:
    rebuilt = two_gpu_nodes(GPUS_PER_NODE).gpus
    rebuilt.rebuild(bodies)
    reserved = two_gpu_nodes(GPUS_PER_NODE).gpus
    for allocation in rebuilt.allocations.values():
        assert reserved.reserve(allocation, check=False)
    assert _state(reserved, 2) == _state(rebuilt, 2)
