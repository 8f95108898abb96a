"""NodeResourcesFit: the fit check with kube's reasons and ignored resources, and the three
scoring strategies with kube's integer arithmetic (examples worked by hand)."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.api.scheduler_config import NodeResourcesFitArgs
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.framework import ClusterView, Code, CycleState
from tensorfusion.scheduler.node_table import NodeTable
from tensorfusion.scheduler.plugins.node_resources_fit import (
    INSUFFICIENT_KEY,
    Insufficient,
    NodeResourcesFit,
)
from tensorfusion.scheduler.pod_info import PodInfo


def node(name: str, **allocatable: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": allocatable}}


def pod(requests: dict[str, Any] | None = None, **spec: Any) -> PodInfo:
    main: dict[str, Any] = {"name": "main"}
    if requests is not None:
        main["resources"] = {"requests": requests}
    return PodInfo.from_dict({"metadata": {"name": "p"}, "spec": {"containers": [main], **spec}})


def view(*nodes: dict[str, Any]) -> ClusterView:
    return ClusterView(NodeTable(nodes), GpuAllocator())


def fit(**args: Any) -> NodeResourcesFit:
    return NodeResourcesFit(NodeResourcesFitArgs.model_validate(args))


def verdicts(plugin: NodeResourcesFit, info: PodInfo, cluster: ClusterView) -> list[str | None]:
    """Per node: None when it fits, else the reason given for it."""
    state = CycleState()
    assert plugin.pre_filter(state, info, cluster).code is Code.SUCCESS
    result = plugin.filter(state, info, cluster, cluster.nodes.present)
    reasons, codes = result.reason_table()
    assert codes is not None
    return [None if ok else reasons[int(codes[i])] for i, ok in enumerate(result.passed)]


def scores(plugin: NodeResourcesFit, info: PodInfo, cluster: ClusterView) -> list[int]:
    feasible = cluster.nodes.present
    raw = plugin.score(CycleState(), info, cluster, feasible)
    return [int(value) for value in plugin.normalize(raw, feasible)]


# --- Filter ----------------------------------------------------------------------------------


def test_insufficient_resources_are_named() -> None:
    cluster = view(
        node("small", cpu="1", memory="1Gi"),
        node("big", cpu="8", memory="64Gi", **{"nvidia.com/gpu": "8"}),
        node("no-memory", cpu="8", memory="1Gi", **{"nvidia.com/gpu": "8"}),
    )
    info = pod({"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"})
    assert verdicts(NodeResourcesFit(), info, cluster) == [
        "Insufficient cpu",
        None,
        "Insufficient memory",
    ]


def test_a_missing_extended_resource_is_insufficient() -> None:
    cluster = view(node("a", cpu="8"))
    assert verdicts(NodeResourcesFit(), pod({"nvidia.com/gpu": "1"}), cluster) == [
        "Insufficient nvidia.com/gpu"
    ]


def test_requests_of_placed_pods_count_and_equal_fits() -> None:
    cluster = view(node("a", cpu="4"))
    cluster.nodes.add_pod(0, pod({"cpu": "3"}))
    assert verdicts(NodeResourcesFit(), pod({"cpu": "1"}), cluster) == [None]
    assert verdicts(NodeResourcesFit(), pod({"cpu": "1001m"}), cluster) == ["Insufficient cpu"]


def test_too_many_pods_comes_first_and_every_failure_is_counted() -> None:
    cluster = view(node("full", cpu="1", pods="1"), node("short", cpu="1"), node("ok", cpu="8"))
    cluster.nodes.add_pod(0, pod())
    plugin = NodeResourcesFit()
    info = pod({"cpu": "2", "example.com/fpga": "1"})
    state = CycleState()
    plugin.pre_filter(state, info, cluster)
    result = plugin.filter(state, info, cluster, cluster.nodes.present)
    reasons, codes = result.reason_table()
    assert codes is not None
    assert [reasons[int(code)] for code in codes[:2]] == ["Too many pods", "Insufficient cpu"]
    insufficient = state.read(INSUFFICIENT_KEY)
    assert isinstance(insufficient, Insufficient)
    assert insufficient.counts(cluster.nodes.present) == {
        "Too many pods": 1,
        "Insufficient cpu": 2,
        "Insufficient example.com/fpga": 3,
    }


def test_a_pod_without_requests_only_needs_a_pod_slot() -> None:
    cluster = view(node("empty"), node("no-slots", pods="0"))
    assert verdicts(NodeResourcesFit(), pod(), cluster) == [None, "Too many pods"]
    # Zero requests are not checked either.
    assert (
        verdicts(NodeResourcesFit(), pod({"cpu": "0", "nvidia.com/gpu": "0"}), cluster)[0] is None
    )


def test_init_containers_and_overhead_count() -> None:
    cluster = view(node("a", cpu="4", memory="1Gi"))
    init = {"name": "init", "resources": {"requests": {"cpu": "5"}}}
    assert verdicts(NodeResourcesFit(), pod({"cpu": "1"}, initContainers=[init]), cluster) == [
        "Insufficient cpu"
    ]
    overhead = {"memory": "1Gi"}
    assert verdicts(NodeResourcesFit(), pod({"memory": "1"}, overhead=overhead), cluster) == [
        "Insufficient memory"
    ]


def test_ignored_resources_apply_to_extended_resources_only() -> None:
    cluster = view(node("a", cpu="1"))
    info = pod({"cpu": "2", "example.com/fpga": "1", "nvidia.com/gpu": "1"})
    plugin = fit(ignoredResources=["example.com/fpga", "cpu"])
    state = CycleState()
    plugin.pre_filter(state, info, cluster)
    plugin.filter(state, info, cluster, cluster.nodes.present)
    assert set(state.read(INSUFFICIENT_KEY).reasons) == {
        "Too many pods",
        "Insufficient cpu",
        "Insufficient nvidia.com/gpu",
    }
    grouped = fit(ignoredResourceGroups=["example.com", "nvidia.com"])
    assert verdicts(grouped, pod({"example.com/fpga": "1", "nvidia.com/gpu": "4"}), cluster) == [
        None
    ]
    assert verdicts(grouped, pod({"cpu": "2"}), cluster) == ["Insufficient cpu"]


def test_filter_works_without_its_pre_filter() -> None:
    cluster = view(node("a", cpu="1"))
    result = NodeResourcesFit().filter(
        CycleState(), pod({"cpu": "2"}), cluster, cluster.nodes.present
    )
    assert result.passed.tolist() == [False]


def test_a_resource_group_with_a_slash_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"ignoredResourceGroups\[1\]: .*cannot contain"):
        fit(ignoredResourceGroups=["example.com", "nvidia.com/gpu"])


# --- Score -------------------------------------------------------------------------------------

HAND_WORKED = (node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))
"""Pod cpu 3 / memory 5000: n1 is 75% / 50% used after it, n2 50% / 50%."""
REQUEST = {"cpu": "3", "memory": "5000"}


def strategy(kind: str, resources: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"type": kind, **extra}
    if resources is not None:
        body["resources"] = resources
    return body


def test_least_allocated() -> None:
    # n1: cpu 25, memory 50 -> 75 // 2; n2: 50 and 50.
    assert scores(NodeResourcesFit(), pod(REQUEST), view(*HAND_WORKED)) == [37, 50]


def test_most_allocated() -> None:
    plugin = fit(scoringStrategy=strategy("MostAllocated"))
    assert scores(plugin, pod(REQUEST), view(*HAND_WORKED)) == [62, 50]


def test_weights_divide_with_integer_division() -> None:
    plugin = fit(
        scoringStrategy=strategy(
            "LeastAllocated", [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]
        )
    )
    # n1: (25 * 3 + 50) // 4.
    assert scores(plugin, pod(REQUEST), view(*HAND_WORKED)) == [31, 50]


def ratio(
    *points: tuple[int, int], resources: list[dict[str, Any]] | None = None
) -> NodeResourcesFit:
    shape = [{"utilization": u, "score": s} for u, s in points]
    return fit(
        scoringStrategy=strategy(
            "RequestedToCapacityRatio", resources, requestedToCapacityRatio={"shape": shape}
        )
    )


def test_requested_to_capacity_ratio_rounds_the_mean() -> None:
    # Shape scores 0-10 become 0-100; n1: round((75 + 50) / 2) = 63, half away from zero.
    assert scores(ratio((0, 0), (100, 10)), pod(REQUEST), view(*HAND_WORKED)) == [63, 50]
    # n1: round((25 + 50) / 2) = 38.
    assert scores(ratio((0, 10), (100, 0)), pod(REQUEST), view(*HAND_WORKED)) == [38, 50]


def test_requested_to_capacity_ratio_leaves_zero_scores_out_of_the_mean() -> None:
    info = pod({"cpu": "3", "memory": "0"})
    # memory is 0% used and scores 0, so only cpu (75) counts on n1.
    assert scores(ratio((0, 0), (100, 10)), info, view(*HAND_WORKED)) == [75, 50]


def test_default_requests_are_scored_for_containers_without_any() -> None:
    cluster = view(node("a", cpu="1", memory="1Gi"))
    # cpu (1000 - 100) * 100 // 1000 = 90; memory (1024 - 200) * 100 // 1024 = 80.
    assert scores(NodeResourcesFit(), pod(), cluster) == [85]
    cluster.nodes.add_pod(0, pod())
    # Now 200m and 400Mi are counted: 80 and (1024 - 400) * 100 // 1024 = 60.
    assert scores(NodeResourcesFit(), pod(), cluster) == [70]


def test_a_resource_the_node_lacks_is_skipped_for_that_node() -> None:
    cluster = view(node("cpu-only", cpu="4"), node("both", cpu="4", memory="10000"))
    assert scores(NodeResourcesFit(), pod(REQUEST), cluster) == [25, 37]


def test_an_extended_resource_the_pod_does_not_request_is_not_scored() -> None:
    plugin = fit(
        scoringStrategy=strategy(
            "LeastAllocated", [{"name": "cpu"}, {"name": "nvidia.com/gpu"}, {"name": "pods"}]
        )
    )
    cluster = view(node("a", cpu="4", **{"nvidia.com/gpu": "8"}))
    assert scores(plugin, pod({"cpu": "3"}), cluster) == [25]
    # gpu (8 - 2) * 100 // 8 = 75; pods is not a resource kube scores.
    assert scores(plugin, pod({"cpu": "3", "nvidia.com/gpu": "2"}), cluster) == [50]


def test_overcommitted_nodes_score_at_the_ends() -> None:
    cluster = view(node("a", cpu="2", memory="10000"))
    info = pod({"cpu": "3", "memory": "10000"})
    assert scores(NodeResourcesFit(), info, cluster) == [0]
    assert scores(fit(scoringStrategy=strategy("MostAllocated")), info, cluster) == [100]


def test_node_weights_follow_allocatable_changes() -> None:
    cluster = view(node("a", cpu="4"))
    assert scores(NodeResourcesFit(), pod(REQUEST), cluster) == [25]
    cluster.nodes.update_node(node("a", cpu="4", memory="10000"))
    assert scores(NodeResourcesFit(), pod(REQUEST), cluster) == [37]
