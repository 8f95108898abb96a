"""pods/binding and pods/eviction."""

from __future__ import annotations

import kubernetes

from tests.kube.helpers import Api, api_error, http, pod
from tests.kube.runner import KubeApi


def _binding(node: str, **annotations: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p", "annotations": annotations},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def test_binding_sets_the_node_and_a_second_one_is_409(kube_api: KubeApi, core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("p"))
    with http(kube_api) as client:
        bound = client.post(
            "/api/v1/namespaces/default/pods/p/binding",
            json=_binding("n1", **{"tensor-fusion.ai/gpu-ids": "g1"}),
        )
        again = client.post("/api/v1/namespaces/default/pods/p/binding", json=_binding("n2"))
    assert bound.status_code == 201
    assert again.status_code == 409
    assert 'already assigned to node "n1"' in again.json()["message"]
    stored = core_v1.read_namespaced_pod("p", "default")
    assert stored.spec.node_name == "n1"
    assert stored.metadata.annotations == {"tensor-fusion.ai/gpu-ids": "g1"}
    assert [(c.type, c.status) for c in stored.status.conditions] == [("PodScheduled", "True")]


def test_binding_needs_a_target_and_an_existing_pod(kube_api: KubeApi, core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("p"))
    with http(kube_api) as client:
        no_target = client.post("/api/v1/namespaces/default/pods/p/binding", json={"target": {}})
        missing = client.post("/api/v1/namespaces/default/pods/q/binding", json=_binding("n1"))
    assert no_target.status_code == 422
    assert "target.name: Required value" in no_target.json()["message"]
    assert missing.status_code == 404
    assert core_v1.read_namespaced_pod("p", "default").spec.node_name is None


def test_the_official_client_binds(core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("p"))
    body = kubernetes.client.V1Binding(
        metadata=kubernetes.client.V1ObjectMeta(name="p"),
        target=kubernetes.client.V1ObjectReference(kind="Node", name="n1"),
    )
    core_v1.create_namespaced_pod_binding("p", "default", body, _preload_content=False)
    assert core_v1.read_namespaced_pod("p", "default").spec.node_name == "n1"


def test_eviction_deletes_the_pod(core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("p"))
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p", "namespace": "default"},
    }
    core_v1.create_namespaced_pod_eviction("p", "default", eviction)
    assert api_error(core_v1.read_namespaced_pod, "p", "default").status == 404
    assert api_error(core_v1.create_namespaced_pod_eviction, "p", "default", eviction).status == 404
