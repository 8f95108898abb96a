"""The kube-scheduler plugins NodeName, NodeUnschedulable, NodeAffinity, TaintToleration and
NodePorts, and UnsupportedFeatures, on small node tables built from node documents."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.framework import ClusterView, Code, CycleState, FilterResult
from tensorfusion.scheduler.node_table import NodeTable
from tensorfusion.scheduler.plugins.node_affinity import NodeAffinity
from tensorfusion.scheduler.plugins.node_name import NodeName
from tensorfusion.scheduler.plugins.node_ports import NodePorts
from tensorfusion.scheduler.plugins.node_unschedulable import NodeUnschedulable
from tensorfusion.scheduler.plugins.taint_toleration import TaintToleration
from tensorfusion.scheduler.plugins.unsupported_features import UnsupportedFeatures
from tensorfusion.scheduler.pod_info import PodInfo


def node(name: str, labels: Any = None, *taints: Any, cordoned: bool = False) -> dict[str, Any]:
    spec = {"taints": list(taints), "unschedulable": cordoned}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pod(**spec: Any) -> PodInfo:
    spec.setdefault("containers", [{"name": "main"}])
    return PodInfo.from_dict({"metadata": {"name": "p", "uid": "u"}, "spec": spec})


def view(*nodes: dict[str, Any]) -> ClusterView:
    return ClusterView(NodeTable(nodes), GpuAllocator())


def passed(plugin: Any, info: PodInfo, cluster: ClusterView) -> list[bool]:
    candidates = cluster.nodes.present.copy()
    result: FilterResult = plugin.filter(CycleState(), info, cluster, candidates)
    return [bool(value) for value in result.passed]


def reasons(plugin: Any, info: PodInfo, cluster: ClusterView) -> list[str | None]:
    """Per node: None if it passed, else its reason."""
    result: FilterResult = plugin.filter(CycleState(), info, cluster, cluster.nodes.present)
    table, codes = result.reason_table()
    return [
        None if ok else table[0 if codes is None else int(codes[i])]
        for i, ok in enumerate(result.passed)
    ]


def normalized_scores(plugin: Any, info: PodInfo, cluster: ClusterView) -> list[int]:
    feasible = cluster.nodes.present.copy()
    raw = plugin.score(CycleState(), info, cluster, feasible)
    return [int(value) for value in plugin.normalize(raw, feasible)]


# --- NodeName ---------------------------------------------------------------------------------


def test_node_name_selects_only_that_node() -> None:
    cluster = view(node("a"), node("b"))
    plugin = NodeName()
    assert plugin.pre_filter(CycleState(), pod(), cluster).code is Code.SKIP
    named = pod(nodeName="b")
    assert plugin.pre_filter(CycleState(), named, cluster).code is Code.SUCCESS
    assert reasons(plugin, named, cluster) == [
        "node(s) didn't match the requested node name",
        None,
    ]
    assert passed(plugin, pod(nodeName="gone"), cluster) == [False, False]


def test_node_name_of_a_removed_node_matches_nothing() -> None:
    cluster = view(node("a"), node("b"))
    cluster.nodes.remove_node("b")
    assert passed(NodeName(), pod(nodeName="b"), cluster) == [False, False]


# --- NodeUnschedulable ------------------------------------------------------------------------


def test_cordoned_nodes_are_rejected() -> None:
    cluster = view(node("a"), node("b", cordoned=True))
    plugin = NodeUnschedulable()
    assert plugin.pre_filter(CycleState(), pod(), cluster).code is Code.SUCCESS
    assert reasons(plugin, pod(), cluster) == [None, "node(s) were unschedulable"]


@pytest.mark.parametrize(
    ("toleration", "skipped"),
    [
        ({"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}, True),
        ({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "value": ""}, True),
        ({"operator": "Exists"}, True),
        (
            {
                "key": "node.kubernetes.io/unschedulable",
                "operator": "Exists",
                "effect": "NoExecute",
            },
            False,
        ),
        ({"key": "node.kubernetes.io/unschedulable", "value": "true"}, False),
    ],
)
def test_tolerating_the_cordon_taint_skips_the_check(
    toleration: dict[str, str], skipped: bool
) -> None:
    cluster = view(node("a", cordoned=True))
    status = NodeUnschedulable().pre_filter(CycleState(), pod(tolerations=[toleration]), cluster)
    assert (status.code is Code.SKIP) == skipped


# --- NodeAffinity -----------------------------------------------------------------------------


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


LABELLED = (
    node("n0", {"zone": "a", "gpus": "8"}),
    node("n1", {"zone": "b", "gpus": "4"}),
    node("n2", {"zone": "c", "gpus": "many"}),
    node("n3", {}),
)


def affinity_passes(**spec: Any) -> list[bool]:
    return passed(NodeAffinity(), pod(**spec), view(*LABELLED))


def test_node_affinity_skips_pods_without_any() -> None:
    plugin = NodeAffinity()
    cluster = view(*LABELLED)
    assert plugin.pre_filter(CycleState(), pod(), cluster).code is Code.SKIP
    preferred_only = pod(
        affinity={
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": {"matchExpressions": [expr("zone", "Exists")]}}
                ]
            }
        }
    )
    assert plugin.pre_filter(CycleState(), preferred_only, cluster).code is Code.SUCCESS
    assert plugin.pre_filter(CycleState(), pod(nodeSelector={"zone": "a"}), cluster).ok


def test_node_selector_needs_every_label() -> None:
    assert affinity_passes(nodeSelector={"zone": "a"}) == [True, False, False, False]
    assert affinity_passes(nodeSelector={"zone": "a", "gpus": "4"}) == [False] * 4
    reason = reasons(NodeAffinity(), pod(nodeSelector={"zone": "b"}), view(*LABELLED))
    assert reason[0] == "node(s) didn't match Pod's node affinity/selector"
    assert reason[1] is None


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (expr("zone", "In", "a", "c"), [True, False, True, False]),
        (expr("zone", "NotIn", "a"), [False, True, True, True]),  # no label: not in
        (expr("zone", "Exists"), [True, True, True, False]),
        (expr("zone", "DoesNotExist"), [False, False, False, True]),
        (expr("gpus", "Gt", "4"), [True, False, False, False]),  # "many" never compares
        (expr("gpus", "Lt", "8"), [False, True, False, False]),
        (expr("gpus", "Gt", "-1"), [True, True, False, False]),
    ],
)
def test_label_operators(requirement: dict[str, Any], expected: list[bool]) -> None:
    assert affinity_passes(affinity=required({"matchExpressions": [requirement]})) == expected


def test_terms_are_ored_and_requirements_anded() -> None:
    zone_a_or_b = expr("zone", "In", "a", "b")
    big = expr("gpus", "Gt", "5")
    assert affinity_passes(affinity=required({"matchExpressions": [zone_a_or_b, big]})) == [
        True,
        False,
        False,
        False,
    ]
    assert affinity_passes(
        affinity=required(
            {"matchExpressions": [big]}, {"matchExpressions": [expr("zone", "DoesNotExist")]}
        )
    ) == [True, False, False, True]


def test_selector_and_affinity_must_both_match() -> None:
    spec = {
        "nodeSelector": {"zone": "b"},
        "affinity": required({"matchExpressions": [expr("gpus", "Exists")]}),
    }
    assert affinity_passes(**spec) == [False, True, False, False]


def test_empty_and_malformed_terms_match_nothing() -> None:
    assert affinity_passes(affinity=required({})) == [False] * 4
    broken = {"matchExpressions": [expr("gpus", "Gt", "lots")]}
    assert affinity_passes(affinity=required(broken)) == [False] * 4
    exists = {"matchExpressions": [expr("zone", "Exists")]}
    assert affinity_passes(affinity=required(broken, exists)) == [True, True, True, False]


def test_match_fields_on_node_name() -> None:
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    assert affinity_passes(affinity=required(by_name)) == [False, False, True, False]
    not_name = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}
    assert affinity_passes(affinity=required(not_name)) == [True, True, False, True]
    both = {**not_name, "matchExpressions": [expr("zone", "Exists")]}
    assert affinity_passes(affinity=required(both)) == [True, True, False, False]


def test_affinity_follows_label_changes() -> None:
    cluster = view(*LABELLED)
    info = pod(nodeSelector={"zone": "a"})
    assert passed(NodeAffinity(), info, cluster) == [True, False, False, False]
    cluster.nodes.update_node(node("n3", {"zone": "a"}))
    assert passed(NodeAffinity(), info, cluster) == [True, False, False, True]
    cluster.nodes.add_node(node("n4", {"zone": "a"}))
    assert passed(NodeAffinity(), info, cluster) == [True, False, False, True, True]


def test_preferred_terms_score_their_weights_normalized_to_100() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 20, "preference": {"matchExpressions": [expr("zone", "In", "a")]}},
                    {"weight": 60, "preference": {"matchExpressions": [expr("gpus", "Exists")]}},
                    {"weight": 5, "preference": {"matchExpressions": [expr("zone", "In", "b")]}},
                ]
            }
        }
    }
    cluster = view(*LABELLED)
    raw = NodeAffinity().score(CycleState(), pod(**spec), cluster, cluster.nodes.present)
    assert raw.tolist() == [80, 65, 60, 0]
    assert normalized_scores(NodeAffinity(), pod(**spec), cluster) == [100, 81, 75, 0]
    assert normalized_scores(NodeAffinity(), pod(nodeSelector={"zone": "a"}), cluster) == [0] * 4


# --- TaintToleration --------------------------------------------------------------------------

GPU = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
DRAIN = {"key": "drain", "value": "", "effect": "NoExecute"}
SPOT = {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}
TAINTED = (
    node("plain"),
    node("gpu", None, GPU),
    node("drain-gpu", None, DRAIN, GPU),
    node("spot", None, SPOT),
)


def test_untolerated_hard_taints_reject_naming_the_first() -> None:
    assert reasons(TaintToleration(), pod(), view(*TAINTED)) == [
        None,
        "node(s) had untolerated taint {gpu: true}",
        "node(s) had untolerated taint {drain: }",
        None,
    ]


def test_the_reason_names_the_first_untolerated_taint_of_the_node() -> None:
    info = pod(tolerations=[{"key": "drain", "operator": "Exists"}])
    assert reasons(TaintToleration(), info, view(*TAINTED))[1:3] == [
        "node(s) had untolerated taint {gpu: true}",
        "node(s) had untolerated taint {gpu: true}",
    ]


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([{"key": "gpu", "value": "true"}], [True, True, False, True]),
        ([{"key": "gpu", "value": "false"}], [True, False, False, True]),
        ([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}], [True, False, False, True]),
        (
            [{"key": "gpu", "operator": "Exists"}, {"key": "drain", "operator": "Exists"}],
            [True] * 4,
        ),
        ([{"operator": "Exists"}], [True] * 4),
        ([{"operator": "Exists", "effect": "NoSchedule"}], [True, True, False, True]),
    ],
)
def test_tolerations_match_as_kube(tolerations: list[dict[str, str]], expected: list[bool]) -> None:
    assert passed(TaintToleration(), pod(tolerations=tolerations), view(*TAINTED)) == expected


def test_taint_filter_follows_taint_changes() -> None:
    cluster = view(*TAINTED)
    assert passed(TaintToleration(), pod(), cluster) == [True, False, False, True]
    cluster.nodes.update_node(node("gpu"))
    cluster.nodes.update_node(node("plain", None, DRAIN))
    assert passed(TaintToleration(), pod(), cluster) == [False, True, False, True]


def test_prefer_no_schedule_taints_lower_the_score() -> None:
    other = {"key": "old", "value": "", "effect": "PreferNoSchedule"}
    cluster = view(node("a"), node("b", None, SPOT), node("c", None, SPOT, other))
    assert normalized_scores(TaintToleration(), pod(), cluster) == [100, 50, 0]
    tolerant = pod(
        tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]
    )
    assert normalized_scores(TaintToleration(), tolerant, cluster) == [100, 100, 0]
    # A toleration limited to NoSchedule does not count against PreferNoSchedule taints.
    hard_only = pod(tolerations=[{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}])
    assert normalized_scores(TaintToleration(), hard_only, cluster) == [100, 50, 0]
    everything = pod(tolerations=[{"operator": "Exists"}])
    assert normalized_scores(TaintToleration(), everything, cluster) == [100, 100, 100]


# --- NodePorts --------------------------------------------------------------------------------


def port_pod(*ports: dict[str, Any]) -> PodInfo:
    return pod(containers=[{"name": "main", "ports": list(ports)}])


@pytest.mark.parametrize(
    ("used", "wanted", "conflict"),
    [
        ({"hostPort": 80}, {"hostPort": 80}, True),
        ({"hostPort": 80}, {"hostPort": 81}, False),
        ({"hostPort": 80}, {"hostPort": 80, "protocol": "UDP"}, False),
        ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80}, True),
        ({"hostPort": 80}, {"hostPort": 80, "hostIP": "10.0.0.1"}, True),
        ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.1"}, True),
        ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.2"}, False),
    ],
)
def test_host_port_conflicts(used: dict[str, Any], wanted: dict[str, Any], conflict: bool) -> None:
    cluster = view(node("a"), node("b"))
    cluster.nodes.add_pod(0, port_pod(used))
    result = reasons(NodePorts(), port_pod(wanted), cluster)
    expected = "node(s) didn't have free ports for the requested pod ports" if conflict else None
    assert result == [expected, None]


def test_node_ports_skip_pods_without_host_ports_and_free_on_removal() -> None:
    cluster = view(node("a"))
    plugin = NodePorts()
    assert plugin.pre_filter(CycleState(), pod(), cluster).code is Code.SKIP
    holder = port_pod({"hostPort": 8080})
    assert plugin.pre_filter(CycleState(), holder, cluster).code is Code.SUCCESS
    cluster.nodes.add_pod(0, holder)
    assert passed(plugin, holder, cluster) == [False]
    cluster.nodes.remove_pod(0, holder)
    assert passed(plugin, holder, cluster) == [True]


# --- UnsupportedFeatures ----------------------------------------------------------------------


def test_unsupported_features_make_the_pod_unresolvable() -> None:
    cluster = view(node("a"))
    plugin = UnsupportedFeatures()
    assert plugin.pre_filter(CycleState(), pod(), cluster).code is Code.SUCCESS
    anti = {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone"}]}
    info = pod(
        affinity={"podAntiAffinity": anti},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
    )
    status = plugin.pre_filter(CycleState(), info, cluster)
    assert status.code is Code.UNRESOLVABLE
    assert status.plugin == "UnsupportedFeatures"
    assert status.reasons == (
        "spec.affinity.podAntiAffinity: pod (anti-)affinity is not supported by this "
        "scheduler yet; the pod is not placed rather than placed ignoring it",
        "spec.volumes[0].persistentVolumeClaim: volumes backed by persistent volume claims "
        "are not supported by this scheduler yet; the pod is not placed rather than placed "
        "ignoring it",
    )


def test_plugin_names_are_kube_scheduler_names() -> None:
    plugins: list[Any] = [
        NodeName,
        NodeUnschedulable,
        NodeAffinity,
        TaintToleration,
        NodePorts,
        UnsupportedFeatures,
    ]
    assert [plugin.name for plugin in plugins] == [
        "NodeName",
        "NodeUnschedulable",
        "NodeAffinity",
        "TaintToleration",
        "NodePorts",
        "UnsupportedFeatures",
    ]


def test_filters_answer_for_every_node_of_a_large_table() -> None:
    nodes = [
        node(f"n{i}", {"zone": str(i % 3)}, *([GPU] if i % 5 == 0 else [])) for i in range(500)
    ]
    cluster = view(*nodes)
    info = pod(nodeSelector={"zone": "1"})
    affinity = np.asarray(passed(NodeAffinity(), info, cluster))
    taints = np.asarray(passed(TaintToleration(), info, cluster))
    indices = np.arange(500)
    assert (affinity == (indices % 3 == 1)).all()
    assert (taints == (indices % 5 != 0)).all()
