"""Leases, Events, server-side apply, and TokenReview."""

from __future__ import annotations

import datetime

import kubernetes
import pytest

from tests.kube.helpers import Api, api_error, http, pod
from tests.kube.runner import KubeApi


def test_lease_is_created_renewed_and_guarded_by_its_version(
    api_client: kubernetes.client.ApiClient,
) -> None:
    leases: Api = kubernetes.client.CoordinationV1Api(api_client)
    now = datetime.datetime.now(datetime.UTC)
    spec = {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": now.isoformat()}
    lease = leases.create_namespaced_lease(
        "default", {"metadata": {"name": "leader"}, "spec": spec}
    )
    lease.spec.holder_identity = "b"
    renewed = leases.replace_namespaced_lease("leader", "default", lease)
    assert renewed.spec.holder_identity == "b"
    assert renewed.spec.lease_duration_seconds == 15
    lease.spec.holder_identity = "c"  # the same, now stale, resourceVersion
    assert api_error(leases.replace_namespaced_lease, "leader", "default", lease).status == 409
    assert leases.read_namespaced_lease("leader", "default").spec.holder_identity == "b"


def test_events_are_stored_and_listed(core_v1: Api) -> None:
    event = {
        "metadata": {"generateName": "p."},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "FailedScheduling",
        "message": "0/1 nodes are available",
        "type": "Warning",
    }
    core_v1.create_namespaced_event("default", event)
    listed = core_v1.list_namespaced_event("default", field_selector="reason=FailedScheduling")
    assert [e.message for e in listed.items] == ["0/1 nodes are available"]


def test_server_side_apply_creates_then_updates(kube_api: KubeApi) -> None:
    headers = {"Content-Type": "application/apply-patch+yaml"}
    url = "/api/v1/namespaces/default/pods/p"
    with http(kube_api) as client:
        created = client.patch(url, params={"fieldManager": "t"}, json=pod("p"), headers=headers)
        labelled = {**pod("p"), "metadata": {"name": "p", "labels": {"x": "1"}}}
        updated = client.patch(url, params={"fieldManager": "t"}, json=labelled, headers=headers)
        status = client.patch(url + "/status", json=pod("q"), headers=headers)
    assert created.status_code == 201
    assert created.json()["metadata"]["uid"]
    assert updated.status_code == 200
    assert updated.json()["metadata"]["labels"] == {"x": "1"}
    assert updated.json()["metadata"]["uid"] == created.json()["metadata"]["uid"]
    assert status.status_code == 400  # the body names another object


def test_token_review_answers_for_registered_tokens(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    kube_api.register_token("secret-token", "system:serviceaccount:tf:controller")
    reviews: Api = kubernetes.client.AuthenticationV1Api(api_client)
    known = reviews.create_token_review({"spec": {"token": "secret-token"}})
    unknown = reviews.create_token_review({"spec": {"token": "other"}})
    assert known.status.authenticated
    assert known.status.user.username == "system:serviceaccount:tf:controller"
    assert not unknown.status.authenticated
    with pytest.raises(ValueError, match="token"):
        kube_api.register_token("", "x")
