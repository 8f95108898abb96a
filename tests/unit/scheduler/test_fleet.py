"""Fleet files: loading, every consistency problem with the object and field at fault, and
the small functions that tie GPUs to their node, pool and NVLink peers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.api.gpu_links import (
    DEFAULT_POOL_ANNOTATION,
    HOSTNAME_LABEL,
    OWNER_LABEL,
    POOL_LABEL,
    gpu_node_name,
    gpu_nvlink_peers,
    gpu_pool_name,
)
from tensorfusion.api.kube_node import KubeNode
from tensorfusion.errors import FleetError
from tensorfusion.scheduler.fleet import Fleet, fleet_problems, load_fleet, read_fleet

OWNER = f"metadata.labels[{OWNER_LABEL!r}]"
POOL = f"metadata.labels[{POOL_LABEL!r}]"
HOSTNAME = f"status.nodeSelector[{HOSTNAME_LABEL!r}]"


def _pool(name: str, default: bool = False) -> dict[str, Any]:
    annotations = {DEFAULT_POOL_ANNOTATION: "true"} if default else {}
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": name, "annotations": annotations},
    }


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name}},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": "2"},
            "allocatable": {"cpu": "95", "memory": "1000Gi", "nvidia.com/gpu": "2"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _gpu_node(name: str, pool: str = "pool-a") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": name, "labels": {OWNER_LABEL: pool}},
        "status": {"phase": "Running", "nodeInfo": {"ramSize": "1Ti", "dataDiskSize": "4T"}},
    }


def _gpu(name: str, node: str, peers: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPU",
        "metadata": {"name": name, "labels": {OWNER_LABEL: node, POOL_LABEL: "pool-a"}},
        "status": {
            "phase": "Running",
            "capacity": {"tflops": "989", "vram": "80Gi"},
            "nvlinkPeers": peers,
        },
    }


def _pod(name: str, namespace: str | None = "default") -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"tensor-fusion.ai/enabled": "true"},
        "annotations": {
            "tensor-fusion.ai/tflops-request": "100",
            "tensor-fusion.ai/vram-request": "8Gi",
            "tensor-fusion.ai/gpu-ids": "n1-gpu-0",
        },
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
    }


def _fleet() -> list[dict[str, Any]]:
    """A consistent fleet: one pool, two nodes of two NVLinked GPUs, two pods."""
    return [
        _pool("pool-a", default=True),
        _node("n1"),
        _node("n2"),
        _gpu_node("n1"),
        _gpu_node("n2"),
        _gpu("n1-gpu-0", "n1", ["n1-gpu-1"]),
        _gpu("n1-gpu-1", "n1", ["n1-gpu-0"]),
        _gpu("n2-gpu-0", "n2", ["n2-gpu-1"]),
        _gpu("n2-gpu-1", "n2", ["n2-gpu-0"]),
        _pod("worker-0"),
        _pod("worker-1"),
    ]


def _problems(documents: list[Any]) -> list[tuple[str, str, str]]:
    return [(p.obj, p.field, p.message) for p in fleet_problems(documents)]


def _only(documents: list[Any]) -> tuple[str, str, str]:
    problems = _problems(documents)
    assert len(problems) == 1, problems
    return problems[0]


def _yaml(documents: list[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


# --- loading a good fleet ---------------------------------------------------------------


def test_a_consistent_fleet_has_no_problems() -> None:
    assert _problems(_fleet()) == []


def test_load_sorts_objects_by_kind_in_file_order() -> None:
    documents = _fleet()
    documents.insert(0, documents.pop())  # a pod first: the kinds may come in any order
    fleet = load_fleet("fleet.yaml", _yaml(documents))
    assert [p["metadata"]["name"] for p in fleet.pods] == ["worker-1", "worker-0"]
    assert [g["metadata"]["name"] for g in fleet.gpus] == [
        "n1-gpu-0",
        "n1-gpu-1",
        "n2-gpu-0",
        "n2-gpu-1",
    ]
    assert [n["metadata"]["name"] for n in fleet.nodes] == ["n1", "n2"]
    assert [n["metadata"]["name"] for n in fleet.gpu_nodes] == ["n1", "n2"]
    assert [p["metadata"]["name"] for p in fleet.pools] == ["pool-a"]
    assert fleet.gpus[0] == _gpu("n1-gpu-0", "n1", ["n1-gpu-1"])


def test_to_yaml_round_trips() -> None:
    fleet = load_fleet("fleet.yaml", _yaml(_fleet()))
    again = load_fleet("again.yaml", fleet.to_yaml())
    assert again == fleet
    assert sorted(map(str, again.documents())) == sorted(map(str, _fleet()))


def test_documents_lists_every_object_once() -> None:
    fleet = Fleet(pools=[_pool("p")], nodes=[_node("n")], pods=[_pod("a"), _pod("b")])
    assert [d["kind"] for d in fleet.documents()] == ["GPUPool", "Node", "Pod", "Pod"]


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(_yaml(_fleet()), encoding="utf-8")
    assert len(load_fleet(path).gpus) == 4
    assert len(load_fleet(str(path)).pods) == 2


def test_node_model_reads_what_scheduling_needs() -> None:
    node = KubeNode.model_validate(_node("n1") | {"spec": {"unschedulable": True}})
    assert node.spec.unschedulable is True
    assert node.status.allocatable["nvidia.com/gpu"].value() == 2
    assert node.status.capacity["memory"].value() == 1024**4
    assert list(node.unknown_fields()) == []  # status.conditions is legitimate, not unknown


# --- one document at a time --------------------------------------------------------------


def test_a_document_that_is_not_a_mapping() -> None:
    documents: list[Any] = [*_fleet(), ["a", "list"]]
    assert _only(documents) == ("document 12", "", "must be a mapping (an object), got list")


@pytest.mark.parametrize("kind", ["Deployment", None, 7, "gpu"])
def test_a_kind_a_fleet_does_not_hold(kind: object) -> None:
    documents: list[Any] = [*_fleet(), {"apiVersion": "v1", "kind": kind, "metadata": {}}]
    obj, field, message = _only(documents)
    assert (obj, field) == ("document 12", "kind")
    kinds = "Node, GPUNode, GPU, GPUPool, Pod, SchedulingConfigTemplate"
    assert message == f"must be one of {kinds}, got {kind!r}"


def test_a_known_kind_with_the_wrong_api_version() -> None:
    documents = _fleet()
    documents[5]["apiVersion"] = "v1"
    obj, field, message = _only(documents)
    assert (obj, field) == ("GPU/n1-gpu-0", "apiVersion")
    assert "tensor-fusion.ai/v1" in message


def test_an_object_without_a_name_is_named_by_its_position() -> None:
    documents = _fleet()
    del documents[0]["metadata"]["name"]
    obj, field, message = _only(documents)
    assert (obj, field) == ("document 1", "metadata.name")
    assert "required" in message


@pytest.mark.parametrize(
    ("index", "path", "value", "field"),
    [
        (5, ("status", "capacity", "tflops"), "-1", "status.capacity.tflops"),
        (5, ("status", "capacity", "vram"), "-80Gi", "status.capacity.vram"),
        (
            1,
            ("status", "allocatable", "nvidia.com/gpu"),
            "-2",
            "status.allocatable['nvidia.com/gpu']",
        ),
        (1, ("status", "capacity", "cpu"), "-96", "status.capacity.cpu"),
        (3, ("status", "nodeInfo", "ramSize"), "-1Ti", "status.nodeInfo.ramSize"),
    ],
)
def test_negative_capacities_name_their_field(
    index: int, path: tuple[str, ...], value: str, field: str
) -> None:
    documents = _fleet()
    target = documents[index]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    obj, found_field, message = _only(documents)
    assert found_field == field
    assert obj == f"{documents[index]['kind']}/{documents[index]['metadata']['name']}"
    assert message == f"must not be negative (got {value!r})"


@pytest.mark.parametrize(
    ("index", "change", "obj", "field", "fragment"),
    [
        (
            1,
            {"spec": {"taints": [{"key": "k", "effect": "Never"}]}},
            "Node/n1",
            "spec.taints[0].effect",
            "'Never'",
        ),
        (1, {"spec": {"unschedulable": "yes"}}, "Node/n1", "spec.unschedulable", "boolean"),
        (2, {"status": {"capacity": {"cpu": "lots"}}}, "Node/n2", "status.capacity.cpu", "'lots'"),
        (5, {"status": {"index": -1}}, "GPU/n1-gpu-0", "status.index", ">= 0"),
        (9, {"spec": {"containers": []}}, "Pod/default/worker-0", "spec.containers", "at least 1"),
        (
            0,
            {"spec": {"capacityConfig": {"oversubscription": {"tflopsOversellRatio": 50}}}},
            "GPUPool/pool-a",
            "spec.capacityConfig.oversubscription.tflopsOversellRatio",
            ">= 100",
        ),
    ],
)
def test_model_errors_carry_the_field_path_validate_reports(
    index: int, change: dict[str, Any], obj: str, field: str, fragment: str
) -> None:
    documents = _fleet()
    documents[index] = documents[index] | change
    problems = _problems(documents)
    assert problems[0][:2] == (obj, field)
    assert fragment in problems[0][2]


def test_a_pod_with_bad_annotations_or_unknown_gpus_is_no_fleet_problem() -> None:
    documents = _fleet()
    annotations = documents[9]["metadata"]["annotations"]
    annotations["tensor-fusion.ai/tflops-request"] = "lots"
    annotations["tensor-fusion.ai/gpu-ids"] = "no-such-gpu"
    documents[9]["spec"]["nodeName"] = "no-such-node"
    assert _problems(documents) == []


# --- duplicates --------------------------------------------------------------------------


def test_a_duplicate_name_points_at_the_first() -> None:
    documents = [*_fleet(), _gpu("n1-gpu-1", "n1", [])]
    assert _only(documents) == (
        "GPU/n1-gpu-1",
        "metadata.name",
        "duplicate name (first in document 7)",
    )


def test_pods_are_unique_per_namespace() -> None:
    documents = [*_fleet(), _pod("worker-0", "team-b"), _pod("worker-0", None)]
    assert _only(documents) == (
        "Pod/default/worker-0",
        "metadata.name",
        "duplicate name (first in document 10)",
    )


def test_the_same_name_in_two_kinds_is_fine() -> None:
    documents = [*_fleet(), _pool("n1")]
    assert _problems(documents) == []


# --- references --------------------------------------------------------------------------


def test_a_gpu_node_needs_its_node() -> None:
    documents = [d for d in _fleet() if d["metadata"]["name"] != "n2" or d["kind"] != "Node"]
    problems = _problems(documents)
    assert problems[0] == ("GPUNode/n2", "metadata.name", "there is no Node named 'n2'")
    # ... and so do the GPUs on it
    assert problems[1:] == [
        ("GPU/n2-gpu-0", OWNER, "there is no Node named 'n2'"),
        ("GPU/n2-gpu-1", OWNER, "there is no Node named 'n2'"),
    ]


def test_a_gpu_without_a_node() -> None:
    documents = _fleet()
    del documents[5]["metadata"]["labels"][OWNER_LABEL]
    obj, field, message = _only(documents)
    assert (obj, field) == ("GPU/n1-gpu-0", OWNER)
    assert message.startswith("missing")
    assert HOSTNAME in message


def test_a_gpu_may_name_its_node_by_hostname_selector() -> None:
    documents = _fleet()
    del documents[5]["metadata"]["labels"][OWNER_LABEL]
    documents[5]["status"]["nodeSelector"] = {HOSTNAME_LABEL: "n1"}
    assert _problems(documents) == []
    documents[5]["status"]["nodeSelector"] = {HOSTNAME_LABEL: "n9"}
    assert _problems(documents)[0] == ("GPU/n1-gpu-0", HOSTNAME, "there is no Node named 'n9'")


def test_an_invalid_node_is_reported_once_not_again_by_its_gpus() -> None:
    documents = _fleet()
    documents[1]["status"]["capacity"]["cpu"] = "-1"
    assert [p[:2] for p in _problems(documents)] == [("Node/n1", "status.capacity.cpu")]


def test_a_gpu_pool_that_does_not_exist() -> None:
    documents = _fleet()
    documents[5]["metadata"]["labels"][POOL_LABEL] = "pool-z"
    assert _only(documents) == ("GPU/n1-gpu-0", POOL, "there is no GPUPool 'pool-z'")


def test_a_gpu_pool_taken_from_its_gpu_node() -> None:
    documents = _fleet()
    del documents[5]["metadata"]["labels"][POOL_LABEL]
    assert _problems(documents) == []
    documents[3]["metadata"]["labels"][OWNER_LABEL] = "pool-z"
    obj, field, message = _only(documents)
    assert (obj, field) == ("GPU/n1-gpu-0", "")
    assert "GPUNode/n1" in message
    assert "no GPUPool 'pool-z'" in message


def test_pools_are_not_checked_when_the_fleet_has_none() -> None:
    documents = [d for d in _fleet() if d["kind"] != "GPUPool"]
    documents[4]["metadata"]["labels"][POOL_LABEL] = "pool-z"
    assert _problems(documents) == []


@pytest.mark.parametrize("dimension", ["tflops", "vram"])
def test_a_gpu_needs_its_capacity(dimension: str) -> None:
    documents = _fleet()
    del documents[6]["status"]["capacity"][dimension]
    obj, field, message = _only(documents)
    assert (obj, field) == ("GPU/n1-gpu-1", f"status.capacity.{dimension}")
    assert message.startswith("required")


def test_a_gpu_without_status_lacks_both_capacities() -> None:
    documents = _fleet()
    del documents[6]["status"]
    documents[5]["status"]["nvlinkPeers"] = []
    assert [p[1] for p in _problems(documents)] == [
        "status.capacity.tflops",
        "status.capacity.vram",
    ]


@pytest.mark.parametrize(
    ("peers", "message"),
    [
        (["n2-gpu-0"], "'n2-gpu-0' is not a GPU on the same node (n1)"),
        (["n1-gpu-9"], "'n1-gpu-9' is not a GPU on the same node (n1)"),
        (["n1-gpu-0"], "a GPU is not its own NVLink peer"),
    ],
)
def test_nvlink_peers_must_be_gpus_of_the_same_node(peers: list[str], message: str) -> None:
    documents = _fleet()
    documents[5]["status"]["nvlinkPeers"] = ["n1-gpu-1", *peers]
    assert _only(documents) == ("GPU/n1-gpu-0", "status.nvlinkPeers[1]", message)


def _template(name: str, mode: str = "LowLoadFirst") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "SchedulingConfigTemplate",
        "metadata": {"name": name},
        "spec": {"placement": {"mode": mode}},
    }


def test_pools_name_templates_of_the_fleet() -> None:
    documents = [*_fleet(), _template("spread")]
    documents[0]["spec"] = {"schedulingConfigTemplate": "spread"}
    fleet = load_fleet("fleet.yaml", _yaml(documents))
    assert fleet.templates == [_template("spread")]
    assert next(fleet.documents()) == _template("spread")  # before the pools naming it
    documents[0]["spec"] = {"schedulingConfigTemplate": "pack"}
    assert _only(documents) == (
        "GPUPool/pool-a",
        "spec.schedulingConfigTemplate",
        "there is no SchedulingConfigTemplate named 'pack'",
    )


def test_a_template_with_an_unknown_mode() -> None:
    obj, field, message = _only([*_fleet(), _template("t", "Random")])
    assert (obj, field) == ("SchedulingConfigTemplate/t", "spec.placement.mode")
    assert "'Random'" in message


def test_only_one_default_pool() -> None:
    documents = [*_fleet(), _pool("pool-b"), _pool("pool-c", default=True)]
    assert _only(documents) == (
        "GPUPool/pool-c",
        f"metadata.annotations[{DEFAULT_POOL_ANNOTATION!r}]",
        "GPUPool/pool-a is the default pool already; only one pool may be",
    )


def test_problems_come_in_document_order() -> None:
    documents = _fleet()
    documents[8]["status"]["capacity"]["vram"] = "-1"
    documents[2]["status"]["capacity"]["cpu"] = "-1"
    documents[5]["status"]["nvlinkPeers"] = ["n2-gpu-0"]
    documents.append(_pool("pool-b", default=True))
    assert [p[0] for p in _problems(documents)] == [
        "Node/n2",
        "GPU/n1-gpu-0",
        "GPU/n2-gpu-1",
        "GPUPool/pool-b",
    ]


# --- load_fleet --------------------------------------------------------------------------


def test_load_raises_the_first_problem_and_counts_the_rest() -> None:
    documents = _fleet()
    documents[5]["metadata"]["labels"][POOL_LABEL] = "pool-z"
    documents[6]["metadata"]["labels"][POOL_LABEL] = "pool-z"
    documents[7]["metadata"]["labels"][POOL_LABEL] = "pool-z"
    with pytest.raises(FleetError) as caught:
        load_fleet("fleet.yaml", _yaml(documents))
    assert caught.value.obj == "GPU/n1-gpu-0"
    assert caught.value.field == POOL
    assert str(caught.value) == (
        f"GPU/n1-gpu-0: {POOL}: there is no GPUPool 'pool-z' (and 2 more problems)"
    )


def test_load_with_one_problem_raises_it_as_is() -> None:
    documents = [*_fleet(), _pool("pool-c", default=True)]
    with pytest.raises(FleetError, match=r"only one pool may be$"):
        load_fleet("fleet.yaml", _yaml(documents))
    documents.append(_pool("pool-d", default=True))
    with pytest.raises(FleetError, match=r"only one pool may be \(and 1 more problem\)$"):
        load_fleet("fleet.yaml", _yaml(documents))


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("kind: GPU\nkind: GPU\n", "line 2", "duplicate key 'kind'"),
        ("a: [1, 2\n", "line 2", "malformed YAML"),
        ("---\nkind: Node\n---\n- : :\n  x: [\n", "line 4", "malformed YAML"),
    ],
)
def test_malformed_yaml_is_the_only_problem_reported(text: str, where: str, fragment: str) -> None:
    fleet, problems = read_fleet("f.yaml", text)
    assert fleet == Fleet()
    assert len(problems) == 1
    assert problems[0].obj == where
    assert fragment in problems[0].message


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"missing\.yaml: cannot read: No such file"):
        load_fleet(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FleetError, match=r"binary\.yaml: cannot read"):
        load_fleet(binary)


def test_an_empty_file_is_an_empty_fleet() -> None:
    assert load_fleet("empty.yaml", "") == Fleet()
    assert load_fleet("empty.yaml", "---\n---\n") == Fleet()


# --- gpu_links ---------------------------------------------------------------------------


def test_gpu_node_name_prefers_the_owner_label() -> None:
    gpu = _gpu("g", "n1", [])
    gpu["status"]["nodeSelector"] = {HOSTNAME_LABEL: "n2"}
    assert gpu_node_name(gpu) == "n1"
    del gpu["metadata"]["labels"][OWNER_LABEL]
    assert gpu_node_name(gpu) == "n2"
    del gpu["status"]["nodeSelector"]
    assert gpu_node_name(gpu) is None


def test_gpu_pool_name_falls_back_to_the_gpu_node_owner() -> None:
    gpu = _gpu("g", "n1", [])
    assert gpu_pool_name(gpu, _gpu_node("n1", "pool-b")) == "pool-a"
    del gpu["metadata"]["labels"][POOL_LABEL]
    assert gpu_pool_name(gpu, _gpu_node("n1", "pool-b")) == "pool-b"
    assert gpu_pool_name(gpu, None) is None


def test_gpu_nvlink_peers() -> None:
    assert gpu_nvlink_peers(_gpu("g", "n", ["a", "b"])) == ["a", "b"]
    assert gpu_nvlink_peers(_gpu("g", "n", [])) == []
    assert gpu_nvlink_peers({"status": None}) == []


@pytest.mark.parametrize(
    "gpu",
    [
        {},
        {"metadata": None, "status": "Running"},
        {"metadata": {"labels": ["a"]}, "status": {"nodeSelector": {HOSTNAME_LABEL: 3}}},
        {"metadata": {"labels": {OWNER_LABEL: 7, POOL_LABEL: None}}},
        {"status": {"nvlinkPeers": "n1-gpu-1"}},
    ],
)
def test_gpu_links_tolerate_malformed_objects(gpu: dict[str, Any]) -> None:
    assert gpu_node_name(gpu) is None
    assert gpu_pool_name(gpu, {"metadata": {"labels": "x"}}) is None
    assert gpu_nvlink_peers(gpu) == []


def test_gpu_nvlink_peers_skips_non_names() -> None:
    assert gpu_nvlink_peers({"status": {"nvlinkPeers": ["a", 3, None, "b"]}}) == ["a", "b"]
