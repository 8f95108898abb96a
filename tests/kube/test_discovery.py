"""Discovery: the built-in groups, and the groups CustomResourceDefinitions add and remove."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import yaml

from tests.kube.helpers import Api, http
from tests.kube.runner import KubeApi

CRDS = sorted((Path(__file__).parents[2] / "charts" / "tensor-fusion" / "crds").glob("*.yaml"))


def test_core_v1_has_group_version_v1_and_lists_pods_and_configmaps(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        assert client.get("/api").json()["versions"] == ["v1"]
        core = client.get("/api/v1").json()
    assert core["groupVersion"] == "v1"
    names = {resource["name"] for resource in core["resources"]}
    assert {"pods", "pods/status", "pods/binding", "pods/eviction", "nodes", "configmaps"} <= names
    assert {"events", "namespaces", "secrets"} <= names


def test_groups_apps_coordination_and_admissionregistration_are_served(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        groups = {group["name"] for group in client.get("/apis").json()["groups"]}
        leases = client.get("/apis/coordination.k8s.io/v1").json()
        webhooks = client.get("/apis/admissionregistration.k8s.io").json()
    assert {"apps", "coordination.k8s.io", "admissionregistration.k8s.io"} <= groups
    assert leases["groupVersion"] == "coordination.k8s.io/v1"
    assert [r["kind"] for r in leases["resources"]] == ["Lease"]
    assert webhooks["preferredVersion"]["groupVersion"] == "admissionregistration.k8s.io/v1"


def test_priority_classes_are_served_cluster_wide(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    scheduling: Api = kubernetes.client.SchedulingV1Api(api_client)
    created = scheduling.create_priority_class({"metadata": {"name": "high"}, "value": 1000})
    with http(kube_api) as client:
        served = client.get("/apis/scheduling.k8s.io/v1").json()["resources"]
    assert [(r["kind"], r["namespaced"]) for r in served] == [("PriorityClass", False)]
    assert created.value == 1000
    assert [c.metadata.name for c in scheduling.list_priority_class().items] == ["high"]


def test_creating_the_crds_registers_the_tensor_fusion_group_and_deleting_removes_it(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    extensions: Api = kubernetes.client.ApiextensionsV1Api(api_client)
    with http(kube_api) as client:
        assert client.get("/apis/tensor-fusion.ai/v1").status_code == 404
        for path in CRDS:
            extensions.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        served = client.get("/apis/tensor-fusion.ai/v1").json()
        kinds = {r["kind"] for r in served["resources"] if "/" not in r["name"]}
        assert served["groupVersion"] == "tensor-fusion.ai/v1"
        assert len(kinds) == len(CRDS) == 12
        assert "gpus/status" in {r["name"] for r in served["resources"]}
        extensions.delete_custom_resource_definition("gpus.tensor-fusion.ai")
        remaining = {r["name"] for r in client.get("/apis/tensor-fusion.ai/v1").json()["resources"]}
    assert "gpus" not in remaining
    assert "gpupools" in remaining


def test_created_crd_is_established(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    extensions: Api = kubernetes.client.ApiextensionsV1Api(api_client)
    crd = extensions.create_custom_resource_definition(yaml.safe_load(CRDS[0].read_text()))
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}


def test_a_crd_without_its_group_is_refused_by_field(kube_api: KubeApi) -> None:
    crd = yaml.safe_load(CRDS[0].read_text())
    del crd["spec"]["group"]
    with http(kube_api) as client:
        answer = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        listed = client.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").json()
    assert answer.status_code == 422
    assert "spec.group: Required value" in answer.json()["message"]
    assert listed["items"] == []


def test_an_unknown_resource_is_404(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        assert client.get("/apis/example.com/v1/widgets").status_code == 404
        assert client.get("/api/v1/widgets").json()["reason"] == "NotFound"
