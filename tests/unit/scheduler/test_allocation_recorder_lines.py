"""The leader's tables built as columns from the allocator's columns, formatted natively, are
the reference's text byte for byte: `encode` of the `Point`s `AllocationRecorder.points` builds."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.annotations import VRAM_LIMIT, VRAM_REQUEST
from tensorfusion.metrics.line_protocol import encode, encode_rows
from tensorfusion.metrics.row_values import WORKLOAD_LABEL
from tensorfusion.scheduler import allocation_lines
from tensorfusion.scheduler.allocation_recorder import AllocationRecorder
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.loop import LoopStats
from tests.unit.scheduler.cluster_builders import gpu, gpu_node, node, pool, tf_pod
from tests.unit.scheduler.test_allocation_recorder import NOW, Source, cluster

POOLS = ("pool-a", "pool-b")


@st.composite
def gpus_of(draw: st.DrawFn, node_name: str, pool_name: str) -> list[dict[str, Any]]:
    made = []
    for index in range(draw(st.integers(1, 3))):
        body = gpu(
            f"{node_name}-g{index}",
            node_name,
            pool=pool_name,
            index=index,
            tflops=draw(st.sampled_from(["100", "989", "121.5"])),
            vram=draw(st.sampled_from(["24Gi", "80Gi", "40Gi"])),
            gpuModel=draw(st.sampled_from(["H100", "L4", "A100"])),
        )
        status = body["status"]
        if draw(st.booleans()):
            status["uuid"] = f"GPU-{node_name}-{index}"
        if draw(st.booleans()):
            del status["phase"]  # no phase: the tag is left out
        made.append(body)
    return made


@st.composite
def clusters(draw: st.DrawFn) -> ClusterState:
    nodes, gpu_nodes, gpus, pods = [], [], [], []
    for number in range(draw(st.integers(1, 4))):
        name = f"n{number}"
        pool_name = draw(st.sampled_from(POOLS))
        nodes.append(node(name))
        body = gpu_node(name, pool=pool_name)
        if draw(st.booleans()):
            body["status"]["phase"] = draw(st.sampled_from(["Running", "Pending"]))
        gpu_nodes.append(body)
        on_node = draw(gpus_of(name, pool_name))
        gpus += on_node
        for slot in range(draw(st.integers(0, 3))):
            names = draw(
                st.lists(
                    st.sampled_from([g["metadata"]["name"] for g in on_node]),
                    min_size=1,
                    max_size=2,
                    unique=True,
                )
            )
            pod = tf_pod(
                f"w-{name}-{slot}",
                node_name=name,
                gpu_ids=",".join(names),
                gpu_count=str(len(names)),
                tflops_request=str(draw(st.integers(1, 20))),
                tflops_limit=str(draw(st.integers(20, 40))),
            )
            pod["metadata"]["annotations"] |= {
                VRAM_REQUEST: f"{draw(st.integers(1, 3))}Gi",
                VRAM_LIMIT: f"{draw(st.integers(3, 5))}Gi",
            }
            if draw(st.booleans()):
                pod["metadata"]["labels"][WORKLOAD_LABEL] = "llm"
            pods.append(pod)
    state, _ = ClusterState.build(
        Fleet(
            nodes=nodes,
            gpu_nodes=gpu_nodes,
            gpus=gpus,
            pools=[pool(name) for name in (*POOLS, "pool-c")],
            pods=pods,
            templates=[],
        )
    )
    return state


def native_and_reference(state: ClusterState) -> tuple[str, str]:
    recorder = AllocationRecorder(Source(state, LoopStats(scheduled=5, unschedulable=2)))
    figures = recorder.figures()
    native = "".join(map(encode_rows, allocation_lines.allocation_rows(recorder, figures, NOW)))
    return native, encode(recorder.points(NOW, figures))


@settings(max_examples=40, deadline=None)
@given(state=clusters(), run=st.integers(1, 4))
def test_native_lines_are_the_reference_text(state: ClusterState, run: int) -> None:
    # Short runs: rows cross run boundaries and tag sets change within a run.
    with mock.patch.object(allocation_lines, "RUN", run):
        native, reference = native_and_reference(state)
    assert native == reference


def test_the_known_cluster_too() -> None:
    """The recorder tests' cluster: unknown phases, a GPU that is not ready, an empty pool."""
    native, reference = native_and_reference(cluster())
    assert native == reference
    assert reference.count("\n") > 10
