"""`SchedulingLoop.start`: the state and the queue it builds from the store, odd pods
included, must equal those built directly from every pod's whole object."""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.store.local import LocalStore
from tests.unit.scheduler.cluster_builders import tf_pod

NODE = "node-00000"
GPU = f"{NODE}-gpu-0"


def _odd_pods() -> list[dict[str, Any]]:
    """Pods that take a different road through the start: each is kept or left out."""
    pending = tf_pod("pending", vram_request="1Gi", tflops_request="10")
    empty_node = tf_pod("empty-node", vram_request="1Gi", tflops_request="10")
    empty_node["spec"]["nodeName"] = ""
    stale_ids = tf_pod("stale-ids", vram_request="1Gi", tflops_request="10", gpu_ids=GPU)
    finished = tf_pod("finished", node_name=NODE, vram_request="1Gi", gpu_ids=GPU)
    finished["status"] = {"phase": "Succeeded"}
    failed_pending = tf_pod("failed-pending", vram_request="1Gi")
    failed_pending["status"] = {"phase": "Failed"}
    other_scheduler = tf_pod("other-scheduler", vram_request="1Gi")
    other_scheduler["spec"]["schedulerName"] = "default-scheduler"
    native = tf_pod("native", node_name=NODE)
    native["spec"] |= {
        "initContainers": [
            {"name": "setup", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}},
            {"name": "sidecar", "restartPolicy": "Always", "ports": [{"hostPort": 8080}]},
        ],
        "overhead": {"cpu": "250m", "memory": "64Mi"},
        "priority": 7,
        "tolerations": [{"operator": "Exists"}],
    }
    native["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1", "nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    native["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    unknown_node = tf_pod("unknown-node", node_name="node-99", vram_request="1Gi", gpu_ids=GPU)
    bad_spec = tf_pod("bad-spec", node_name=NODE)
    bad_spec["spec"] |= {"priority": "high", "nodeSelector": None}
    bad_spec["metadata"]["labels"] = None
    bad_ids = tf_pod("bad-ids", node_name=NODE, vram_request="1Gi", gpu_ids="gone-gpu")
    return [
        pending,
        empty_node,
        stale_ids,
        finished,
        failed_pending,
        other_scheduler,
        native,
        unknown_node,
        bad_spec,
        bad_ids,
    ]


ODD_PODS = _odd_pods()


def _info(info: PodInfo) -> tuple[Any, ...]:
    return tuple(repr(getattr(info, field.name)) for field in fields(PodInfo))


def _state(loop: SchedulingLoop) -> dict[str, Any]:
    """All that start builds: allocations, node accounting, problems, and the queue."""
    cluster, nodes = loop.cluster, loop.cluster.nodes
    return {
        "report": loop.report,
        "problems": cluster.problems,
        "snapshot": cluster.gpus.snapshot(),
        "allocations": cluster.gpus.allocations,
        "bound": {uid: (index, _info(info)) for uid, (index, info) in cluster.bound.items()},
        "native_gpus": cluster.native_gpus,
        "pod_count": nodes._pod_count.tolist(),
        "non_zero": {name: array.tolist() for name, array in nodes._non_zero.items()},
        "ports": nodes._ports,
        "port_users": nodes._port_users,
        "waiting": {uid: (w.pod, _info(w.info)) for uid, w in loop._waiting.items()},
        "gated": {uid: (w.pod, _info(w.info)) for uid, w in loop._gated.items()},
        # The queue's order; entries superseded since are skipped when popped.
        "heap": [
            (priority, uid)
            for priority, seq, uid in sorted(loop._heap)
            if uid in loop._waiting and loop._waiting[uid].seq == seq
        ],
        "pending": loop.pending(),
    }


def _from_whole_objects(store: LocalStore) -> SchedulingLoop:
    """A loop started as it was before pods were projected: every kind listed whole."""
    loop = SchedulingLoop(store)
    lists = {kind: store.list(kind) for kind in ("Node", "GPUNode", "GPU", "GPUPool", "Pod")}
    loop.cluster, loop.report = ClusterState.build(
        Fleet(
            nodes=lists["Node"],
            gpu_nodes=lists["GPUNode"],
            gpus=lists["GPU"],
            pools=lists["GPUPool"],
            pods=lists["Pod"],
            templates=store.list("SchedulingConfigTemplate"),
        )
    )
    for pod in lists["Pod"]:
        loop._offer(pod)
    return loop


@settings(max_examples=15, deadline=None)
@given(
    st.integers(min_value=0, max_value=3),
    st.sampled_from([0.0, 0.5, 0.9]),
    st.lists(st.sampled_from(range(len(ODD_PODS))), unique=True),
)
def test_start_builds_what_whole_pods_build(seed: int, fill: float, odd: list[int]) -> None:
    fleet = generate_fleet(3, 2, "H100", fill, seed=seed)
    with LocalStore(":memory:") as store:
        store.create_many(list(fleet.documents()))
        store.create_many([copy.deepcopy(ODD_PODS[number]) for number in odd])
        loop = SchedulingLoop(store)
        loop.start()
        try:
            assert _state(loop) == _state(_from_whole_objects(store))
        finally:
            loop.close()
