"""PodInfo.from_dict: kube's request arithmetic, the parts plugins read, and malformed pods
reported with their field path instead of raising."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.annotations import GPU_COUNT, TFLOPS_REQUEST, VRAM_REQUEST
from tensorfusion.scheduler.plugins.host_ports import HostPort
from tensorfusion.scheduler.plugins.node_selection import (
    NOTHING,
    LabelRequirement,
    NameRequirement,
    NodeSelectorTerm,
)
from tensorfusion.scheduler.plugins.taints import Toleration
from tensorfusion.scheduler.pod_info import (
    DEFAULT_CPU_REQUEST,
    DEFAULT_MEMORY_REQUEST,
    PodInfo,
    UnsupportedFeature,
)

MI = 1024**2
GI = 1024**3


def container(name: str = "main", requests: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **extra}
    if requests is not None:
        body["resources"] = {"requests": requests}
    return body


def pod_dict(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team", "uid": "uid-p"},
        "spec": {"containers": list(containers) or [container()], **spec},
    }


def read(*containers: dict[str, Any], **spec: Any) -> PodInfo:
    return PodInfo.from_dict(pod_dict(*containers, **spec))


def problems_at(info: PodInfo, path: str) -> list[str]:
    return [problem for problem in info.spec_problems if problem.startswith(path + ":")]


def problem_at(info: PodInfo, path: str) -> str:
    """The first problem reported at exactly `path`."""
    found = problems_at(info, path)
    assert found, info.spec_problems
    return found[0]


# --- identity and defaults --------------------------------------------------------------------


def test_defaults_of_a_bare_pod() -> None:
    info = PodInfo.from_dict({"metadata": {"name": "bare"}, "spec": {"containers": [{}]}})
    assert (info.namespace, info.name, info.uid) == ("default", "bare", "default/bare")
    assert info.priority == 0
    assert info.scheduler_name == "default-scheduler"
    assert info.node_name is None
    assert info.requests == {}
    assert info.non_zero_requests == {"cpu": DEFAULT_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST}
    assert info.workload is None
    assert info.required_terms is None
    assert info.spec_problems == ()


def test_metadata_and_scalar_spec_fields() -> None:
    doc = pod_dict(
        priority=1000,
        schedulerName="tensor-fusion-scheduler",
        nodeName="node-1",
        nodeSelector={"zone": "a"},
    )
    doc["metadata"]["labels"] = {"app": "web"}
    doc["metadata"]["annotations"] = {"note": "x"}
    info = PodInfo.from_dict(doc)
    assert (info.namespace, info.name, info.uid) == ("team", "p", "uid-p")
    assert info.labels == {"app": "web"}
    assert info.annotations == {"note": "x"}
    assert info.priority == 1000
    assert info.scheduler_name == "tensor-fusion-scheduler"
    assert info.node_name == "node-1"
    assert info.node_selector == {"zone": "a"}


# --- requests ---------------------------------------------------------------------------------


def test_requests_sum_over_containers_in_kube_units() -> None:
    info = read(
        container("a", {"cpu": "500m", "memory": "1Gi"}),
        container("b", {"cpu": 2, "memory": "512Mi", "ephemeral-storage": "1G"}),
    )
    assert info.requests == {"cpu": 2500, "memory": GI + 512 * MI, "ephemeral-storage": 10**9}


def test_cpu_rounds_up_to_a_millicore() -> None:
    assert read(container(requests={"cpu": "0.0001"})).requests["cpu"] == 1


def test_init_container_max_against_container_sum() -> None:
    info = read(
        container("a", {"cpu": "1", "memory": "1Gi"}),
        container("b", {"cpu": "1", "memory": "1Gi"}),
        initContainers=[container("init", {"cpu": "3", "memory": "1Gi"})],
    )
    # cpu: the init container alone needs more than both containers together; memory: less.
    assert info.requests == {"cpu": 3000, "memory": 2 * GI}


def test_sidecars_add_up_and_run_beside_later_init_containers() -> None:
    info = read(
        container("main", {"cpu": "1"}),
        initContainers=[
            container("proxy", {"cpu": "500m"}, restartPolicy="Always"),
            container("migrate", {"cpu": "2"}),
        ],
    )
    # main + proxy = 1.5 cpu; while migrate runs, proxy runs too: 2.5 cpu.
    assert info.requests["cpu"] == 2500


def test_overhead_comes_on_top() -> None:
    info = read(container(requests={"cpu": "1"}), overhead={"cpu": "250m", "memory": "64Mi"})
    assert info.requests == {"cpu": 1250, "memory": 64 * MI}
    assert info.non_zero_requests == {"cpu": 1250, "memory": DEFAULT_MEMORY_REQUEST + 64 * MI}


def test_a_missing_request_defaults_to_its_limit() -> None:
    body = container()
    body["resources"] = {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    assert read(body).requests == {"cpu": 1000, "memory": GI}


def test_non_zero_defaults_apply_per_container_and_only_when_missing() -> None:
    info = read(
        container("a", {"cpu": "1"}),
        container("b", {"memory": "1Gi"}),
        container("c", {"cpu": "0", "memory": "0"}),
    )
    assert info.non_zero_requests == {
        "cpu": 1000 + DEFAULT_CPU_REQUEST,
        "memory": DEFAULT_MEMORY_REQUEST + GI,
    }
    assert info.requests == {"cpu": 1000, "memory": GI}


def test_native_gpus_are_the_nvidia_gpu_request() -> None:
    info = read(container(requests={"nvidia.com/gpu": "2"}))
    assert info.native_gpus == 2
    assert read().native_gpus == 0


@pytest.mark.parametrize(
    ("requests", "field", "fragment"),
    [
        ({"cpu": "lots"}, "cpu", "not a Kubernetes quantity"),
        ({"memory": "-1Gi"}, "memory", "must not be negative"),
        ({"memory": True}, "memory", "got a boolean"),
        ({"memory": ["1Gi"]}, "memory", "got a list"),
        ({"nvidia.com/gpu": "0.5"}, "nvidia.com/gpu", "whole number"),
        ({"gpu": "1"}, "gpu", "standard resource"),
        ({"pods": "1"}, "pods", "standard resource"),
        ({"example.com/a/b": "1"}, "example.com/a/b", "extended resource"),
        ({"cpu": "1E30"}, "cpu", "out of range"),
        ({"memory": "100Pi"}, "memory", "too large"),
    ],
)
def test_bad_requests_are_problems_with_their_path(
    requests: dict[str, Any], field: str, fragment: str
) -> None:
    info = read(container("main", {"cpu": "1", **requests}))
    assert len(problems_at(info, f"spec.containers[0].resources.requests.{field}")) == 1
    assert fragment in problem_at(info, f"spec.containers[0].resources.requests.{field}")
    assert field not in info.requests


def test_a_request_above_its_limit_is_a_problem() -> None:
    body = container()
    body["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    info = read(body)
    assert problems_at(info, "spec.containers[0].resources.requests.cpu") == [
        "spec.containers[0].resources.requests.cpu: must not exceed the limit (1)"
    ]


# --- workload ---------------------------------------------------------------------------------


def test_workload_read_when_enabled() -> None:
    doc = pod_dict()
    doc["metadata"]["labels"] = {"tensor-fusion.ai/enabled": "true"}
    doc["metadata"]["annotations"] = {TFLOPS_REQUEST: "10", VRAM_REQUEST: "4Gi"}
    info = PodInfo.from_dict(doc)
    assert info.workload is not None
    assert info.workload.enabled
    assert info.workload.vram_request == 4 * GI
    assert info.workload_problems == ()


def test_workload_read_from_a_demand_annotation_alone() -> None:
    doc = pod_dict()
    doc["metadata"]["annotations"] = {GPU_COUNT: "2", VRAM_REQUEST: "1Gi"}
    info = PodInfo.from_dict(doc)
    assert info.workload is not None
    assert not info.workload.enabled
    assert info.workload.gpu_count == 2


def test_no_workload_for_a_plain_pod() -> None:
    doc = pod_dict()
    doc["metadata"]["labels"] = {"tensor-fusion.ai/enabled": "false"}
    doc["metadata"]["annotations"] = {"tensor-fusion.ai/gpupool": "pool-a"}
    assert PodInfo.from_dict(doc).workload is None


def test_workload_problems_name_the_annotation() -> None:
    doc = pod_dict(container("a"), container("b"))
    doc["metadata"]["labels"] = {"tensor-fusion.ai/enabled": "true"}
    doc["metadata"]["annotations"] = {VRAM_REQUEST: "lots"}
    info = PodInfo.from_dict(doc)
    assert info.workload is None
    keys = {problem.key for problem in info.workload_problems}
    # The container names reach the reader: two containers need inject-container.
    assert keys == {VRAM_REQUEST, "tensor-fusion.ai/inject-container"}
    assert info.spec_problems == ()


def test_workload_depends_on_the_container_names() -> None:
    doc = pod_dict(container("a"), container("b"))
    doc["metadata"]["labels"] = {"tensor-fusion.ai/enabled": "true"}
    doc["metadata"]["annotations"] = {"tensor-fusion.ai/inject-container": "b"}
    assert PodInfo.from_dict(doc).workload_problems == ()
    doc["spec"]["containers"] = [container("a"), container("c")]
    assert [p.key for p in PodInfo.from_dict(doc).workload_problems] == [
        "tensor-fusion.ai/inject-container"
    ]


# --- tolerations ------------------------------------------------------------------------------


def test_tolerations_are_read_with_defaults() -> None:
    info = read(
        tolerations=[
            {"key": "gpu", "value": "true", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"},
        ]
    )
    assert info.tolerations == (
        Toleration("gpu", "Equal", "true", "NoSchedule"),
        Toleration("", "Exists", "", ""),
        Toleration("spot", "Exists", "", "PreferNoSchedule"),
    )


@pytest.mark.parametrize(
    ("toleration", "path", "fragment"),
    [
        ({"key": "a", "operator": "Like"}, "operator", '"Equal" or "Exists"'),
        ({"key": "a", "operator": "Exists", "value": "x"}, "value", "must be empty"),
        ({"value": "x"}, "operator", "must be Exists when the key is empty"),
        ({"key": "a", "effect": "NoRun"}, "effect", "must be one of"),
        ({"key": 7}, "key", "must be a string"),
        ("gpu", "", "must be an object"),
    ],
)
def test_bad_tolerations_are_dropped_and_reported(
    toleration: Any, path: str, fragment: str
) -> None:
    info = read(tolerations=[toleration, {"key": "ok", "operator": "Exists"}])
    at = "spec.tolerations[0]" + (f".{path}" if path else "")
    assert fragment in problem_at(info, at)
    assert info.tolerations == (Toleration("ok", "Exists"),)


# --- node affinity ----------------------------------------------------------------------------

REQUIRED = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"


def affinity(required: Any = None, preferred: Any = None) -> dict[str, Any]:
    node_affinity: dict[str, Any] = {}
    if required is not None:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    if preferred is not None:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": node_affinity}


def test_required_terms_are_read() -> None:
    info = read(
        affinity=affinity(
            required={
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a", "b"]},
                            {"key": "gpus", "operator": "Gt", "values": ["-3"]},
                        ],
                        "matchFields": [
                            {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}
                        ],
                    },
                    {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]},
                ]
            }
        )
    )
    assert info.required_terms == (
        NodeSelectorTerm(
            (
                LabelRequirement("zone", "In", frozenset({"a", "b"})),
                LabelRequirement("gpus", "Gt", bound=-3),
            ),
            (NameRequirement("n1", negated=True),),
        ),
        NodeSelectorTerm((LabelRequirement("spot", "DoesNotExist"),)),
    )
    assert info.spec_problems == ()


def test_an_empty_term_is_kept_and_matches_nothing() -> None:
    info = read(affinity=affinity(required={"nodeSelectorTerms": [{}]}))
    assert info.required_terms == (NOTHING,)
    assert NOTHING.empty
    assert info.spec_problems == ()


@pytest.mark.parametrize(
    ("requirement", "path", "fragment"),
    [
        ({"key": "zone", "operator": "Near", "values": ["a"]}, "operator", "must be one of"),
        ({"key": "zone", "operator": "In"}, "values", "must not be empty"),
        ({"key": "zone", "operator": "Exists", "values": ["a"]}, "values", "must be empty"),
        ({"key": "gpus", "operator": "Gt", "values": ["four"]}, "values", "single integer"),
        ({"key": "gpus", "operator": "Lt", "values": ["1", "2"]}, "values", "single integer"),
        (
            {"key": "gpus", "operator": "Lt", "values": ["99999999999999999999"]},
            "values",
            "integer",
        ),
        ({"key": "bad key!", "operator": "Exists"}, "key", "name part"),
        ({"key": "zone", "operator": "In", "values": ["no spaces"]}, "values[0]", "label value"),
        ({"key": "zone", "operator": "In", "values": "a"}, "values", "must be a list"),
    ],
)
def test_a_malformed_requirement_voids_its_term(
    requirement: dict[str, Any], path: str, fragment: str
) -> None:
    good = {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
    terms = [{"matchExpressions": [requirement]}, good]
    info = read(affinity=affinity(required={"nodeSelectorTerms": terms}))
    at = f"{REQUIRED}.nodeSelectorTerms[0].matchExpressions[0].{path}"
    assert fragment in problem_at(info, at)
    # The malformed term matches nothing; the other term still counts.
    assert info.required_terms == (NOTHING, NodeSelectorTerm((LabelRequirement("zone", "Exists"),)))


@pytest.mark.parametrize(
    ("field", "path", "fragment"),
    [
        ({"key": "metadata.uid", "operator": "In", "values": ["x"]}, "key", "metadata.name"),
        ({"key": "metadata.name", "operator": "Exists"}, "operator", '"In" or "NotIn"'),
        ({"key": "metadata.name", "operator": "In", "values": ["a", "b"]}, "values", "exactly one"),
    ],
)
def test_a_malformed_field_requirement_voids_its_term(
    field: dict[str, Any], path: str, fragment: str
) -> None:
    info = read(affinity=affinity(required={"nodeSelectorTerms": [{"matchFields": [field]}]}))
    at = f"{REQUIRED}.nodeSelectorTerms[0].matchFields[0].{path}"
    assert fragment in problem_at(info, at)
    assert info.required_terms == (NOTHING,)


def test_required_without_terms_is_a_problem_and_matches_nothing() -> None:
    info = read(affinity=affinity(required={"nodeSelectorTerms": []}))
    assert problems_at(info, f"{REQUIRED}.nodeSelectorTerms")
    assert info.required_terms == ()


def test_preferred_terms_keep_valid_weighted_terms() -> None:
    zone = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    info = read(
        affinity=affinity(
            preferred=[
                {"weight": 30, "preference": zone},
                {"weight": 0, "preference": zone},
                {"weight": 101, "preference": zone},
                {"preference": zone},
                {"weight": 5, "preference": {}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone"}]}},
            ]
        )
    )
    assert [term.weight for term in info.preferred_terms] == [30]
    assert problems_at(info, f"{PREFERRED}[1].weight")
    assert problems_at(info, f"{PREFERRED}[2].weight")
    assert problems_at(info, f"{PREFERRED}[3].weight") == [f"{PREFERRED}[3].weight: is required"]
    assert not problems_at(info, f"{PREFERRED}[4].preference")  # empty: skipped, as kube
    assert problems_at(info, f"{PREFERRED}[5].preference.matchExpressions[0].operator")


# --- host ports and unsupported features ------------------------------------------------------


def test_host_ports_of_containers_and_sidecars() -> None:
    info = read(
        container("web", ports=[{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9}]),
        container("dns", ports=[{"hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]),
        initContainers=[
            container("setup", ports=[{"hostPort": 7000}]),
            container("proxy", ports=[{"hostPort": 15001}], restartPolicy="Always"),
        ],
    )
    assert info.host_ports == (
        HostPort(15001),
        HostPort(8080),
        HostPort(53, "UDP", "10.0.0.1"),
    )


@pytest.mark.parametrize(
    ("port", "path", "fragment"),
    [
        ({"hostPort": 70000}, "hostPort", "0..65535"),
        ({"hostPort": "80"}, "hostPort", "must be an integer"),
        ({"hostPort": 80, "protocol": "HTTP"}, "protocol", "must be one of TCP, UDP, SCTP"),
    ],
)
def test_bad_host_ports_are_problems(port: dict[str, Any], path: str, fragment: str) -> None:
    info = read(container(ports=[port]))
    assert fragment in problem_at(info, f"spec.containers[0].ports[0].{path}")
    assert info.host_ports == ()


def test_unsupported_features_are_named_with_their_path() -> None:
    term = {"labelSelector": {}, "topologyKey": "zone"}
    info = read(
        affinity={
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]},
        },
        topologySpreadConstraints=[{"maxSkew": 1}],
        volumes=[
            {"name": "cfg", "configMap": {"name": "c"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
        ],
    )
    assert info.unsupported == (
        UnsupportedFeature("podAffinity", "spec.affinity.podAffinity"),
        UnsupportedFeature("podAntiAffinity", "spec.affinity.podAntiAffinity"),
        UnsupportedFeature("topologySpreadConstraints", "spec.topologySpreadConstraints"),
        UnsupportedFeature(
            "persistentVolumeClaim volumes", "spec.volumes[1].persistentVolumeClaim"
        ),
        UnsupportedFeature("persistentVolumeClaim volumes", "spec.volumes[2].ephemeral"),
    )


def test_empty_pod_affinity_is_not_a_feature_in_use() -> None:
    info = read(affinity={"podAffinity": {}, "podAntiAffinity": {"x": []}})
    assert info.unsupported == ()


# --- malformed documents ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], "pod"),
        ({"metadata": "p"}, "metadata"),
        ({"metadata": {"name": 3}}, "metadata.name"),
        ({"metadata": {"labels": {"a": 1}}}, "metadata.labels.a"),
        ({"metadata": {"annotations": ["x"]}}, "metadata.annotations"),
        ({"spec": 5}, "spec"),
        ({"spec": {"containers": {"name": "c"}}}, "spec.containers"),
        ({"spec": {"containers": [7]}}, "spec.containers[0]"),
        ({"spec": {"containers": [{"resources": []}]}}, "spec.containers[0].resources"),
        (
            {"spec": {"containers": [{"resources": {"requests": "1"}}]}},
            "spec.containers[0].resources.requests",
        ),
        ({"spec": {"initContainers": "x"}}, "spec.initContainers"),
        ({"spec": {"priority": "high"}}, "spec.priority"),
        ({"spec": {"priority": True}}, "spec.priority"),
        ({"spec": {"priority": 2**40}}, "spec.priority"),
        ({"spec": {"nodeName": ["n"]}}, "spec.nodeName"),
        ({"spec": {"nodeSelector": "zone=a"}}, "spec.nodeSelector"),
        ({"spec": {"tolerations": {"key": "a"}}}, "spec.tolerations"),
        ({"spec": {"affinity": 3}}, "spec.affinity"),
        ({"spec": {"affinity": {"nodeAffinity": []}}}, "spec.affinity.nodeAffinity"),
        ({"spec": {"affinity": affinity(required=[])}}, REQUIRED),
        ({"spec": {"affinity": affinity(preferred={})}}, PREFERRED),
        ({"spec": {"overhead": "1"}}, "spec.overhead"),
        ({"spec": {"volumes": [None, 4]}}, "spec.volumes[1]"),
        ({"spec": {"topologySpreadConstraints": "x"}}, "spec.topologySpreadConstraints"),
    ],
)
def test_malformed_parts_are_reported_not_raised(doc: Any, path: str) -> None:
    info = PodInfo.from_dict(doc)
    assert problems_at(info, path), info.spec_problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
SPEC_KEYS = (
    "containers",
    "initContainers",
    "priority",
    "nodeName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "overhead",
    "volumes",
    "topologySpreadConstraints",
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(SPEC_KEYS), json_values, max_size=4),
    st.dictionaries(st.sampled_from(("name", "labels", "annotations", "uid")), json_values),
)
def test_any_json_document_reads_without_raising(
    spec: dict[str, Any], metadata: dict[str, Any]
) -> None:
    info = PodInfo.from_dict({"metadata": metadata, "spec": spec})
    assert all(isinstance(problem, str) and ": " in problem for problem in info.spec_problems)
    assert all(isinstance(amount, int) and amount >= 0 for amount in info.requests.values())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=3), json_values)
def test_any_container_reads_without_raising(resources: dict[str, Any], ports: Any) -> None:
    doc = pod_dict(
        {"name": "c", "resources": {"requests": resources, "limits": resources}, "ports": ports}
    )
    info = PodInfo.from_dict(doc)
    assert set(info.non_zero_requests) == {"cpu", "memory"}
