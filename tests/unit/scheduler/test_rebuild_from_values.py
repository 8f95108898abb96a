"""A rebuild from the values a store lists (`list_values` at `REBUILD_PATHS`) restores the
same allocator state as one from the whole pod objects, and the columns it sums in one pass
equal those that reserving the same allocations one at a time leaves."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.scheduler.allocator import REBUILD_PATHS, GpuAllocator, rebuild_values
from tensorfusion.store import LocalStore
from tensorfusion.store.projection import values_at

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


def _allocator() -> GpuAllocator:
    return two_gpu_nodes(GPUS_PER_NODE).gpus


def _state(allocator: GpuAllocator) -> dict[str, Any]:
    columns = allocator.arrays()
    return {
        "allocations": allocator.allocations,
        "columns": {name: getattr(columns, name).tolist() for name in columns.__dataclass_fields__},
        "gpu_workers": allocator.gpu_workers().tolist(),
        "node_workers": allocator.node_workers(2).tolist(),
        "node_versions": allocator.node_versions(2).tolist(),
        "snapshot": allocator.snapshot(),
    }


@settings(max_examples=60, deadline=None)
@given(pods, st.integers(min_value=0, max_value=12))
def test_values_restore_what_objects_restore(bodies: list[dict[str, Any]], split: int) -> None:
    for body in bodies:
        assert rebuild_values(body) == tuple(values_at(body, REBUILD_PATHS))
    with LocalStore(":memory:") as store:
        store.create_many(bodies)
        listed = store.list("Pod")
        values = store.list_values("Pod", REBUILD_PATHS)
    from_objects, from_values = _allocator(), _allocator()
    # Two rebuilds each: the second skips the pods the first restored.
    reports = [from_objects.rebuild(listed[:split]), from_objects.rebuild(listed)]
    assert reports == [
        from_values.rebuild_from_values(values[:split]),
        from_values.rebuild_from_values(values),
    ]
    assert _state(from_values) == _state(from_objects)


@settings(max_examples=60, deadline=None)
@given(pods)
def test_summed_columns_equal_reserving_one_at_a_time(bodies: list[dict[str, Any]]) -> None:
    rebuilt = _allocator()
    rebuilt.rebuild(bodies)
    reserved = _allocator()
    for allocation in rebuilt.allocations.values():
        assert reserved.reserve(allocation, check=False)
    assert _state(reserved) == _state(rebuilt)
