"""Mutating admission through an HTTPS webhook, as kube-apiserver calls it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import trustme

from tests.kube.helpers import Api, api_error, http, pod
from tests.kube.runner import KubeApi
from tests.kube.webhook_server import Webhook, label_patch, webhook_server


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with webhook_server(label_patch("mutated", "yes")) as hook:
        yield hook


@pytest.fixture
def registrations(
    api_client: kubernetes.client.ApiClient,
) -> Api:
    return kubernetes.client.AdmissionregistrationV1Api(api_client)


def configuration(hook: Webhook, name: str = "tf", **webhook: Any) -> dict[str, Any]:
    entry = {
        "name": f"{name}.tensor-fusion.ai",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"url": hook.url, "caBundle": hook.ca_bundle},
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        **webhook,
    }
    return {"metadata": {"name": name}, "webhooks": [entry]}


def test_the_webhook_patch_is_applied_on_pod_create(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    registrations.create_mutating_webhook_configuration(configuration(webhook))
    created = core_v1.create_namespaced_pod("default", pod("p"))
    assert created.metadata.labels == {"mutated": "yes"}
    assert core_v1.read_namespaced_pod("p", "default").metadata.labels == {"mutated": "yes"}
    (review,) = webhook.reviews
    assert review["apiVersion"] == "admission.k8s.io/v1"
    request = review["request"]
    assert (request["operation"], request["namespace"], request["name"]) == (
        "CREATE",
        "default",
        "p",
    )
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["dryRun"] is False
    core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert len(webhook.reviews) == 1  # configmaps are not in the rules


def test_object_and_namespace_selectors_choose_what_is_sent(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    registrations.create_mutating_webhook_configuration(
        configuration(
            webhook,
            objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
            namespaceSelector={"matchLabels": {"tf": "on"}},
        )
    )
    core_v1.create_namespace({"metadata": {"name": "gpu", "labels": {"tf": "on"}}})
    core_v1.create_namespaced_pod("default", pod("outside"))
    core_v1.create_namespaced_pod("gpu", pod("skipped", labels={"skip": "1"}))
    core_v1.create_namespaced_pod("gpu", pod("inside"))
    assert [r["request"]["name"] for r in webhook.reviews] == ["inside"]


def test_a_wrong_ca_bundle_fails_with_policy_fail_and_passes_with_ignore(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    other_ca = base64.b64encode(trustme.CA().cert_pem.bytes()).decode()
    strict = configuration(webhook, "strict", failurePolicy="Fail")
    strict["webhooks"][0]["clientConfig"]["caBundle"] = other_ca
    registrations.create_mutating_webhook_configuration(strict)
    error = api_error(core_v1.create_namespaced_pod, "default", pod("p"))
    assert error.status == 500
    assert 'failed calling webhook "strict.tensor-fusion.ai"' in error.message
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert core_v1.list_namespaced_pod("default").items == []
    registrations.patch_mutating_webhook_configuration(
        "strict", [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]
    )
    assert core_v1.create_namespaced_pod("default", pod("p")).metadata.labels == {}
    assert webhook.reviews == []  # the handshake failed before any review was sent


def test_ignore_policy_admits_unchanged_when_the_webhook_is_unreachable(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    lenient = configuration(webhook, "lenient", failurePolicy="Ignore")
    lenient["webhooks"][0]["clientConfig"]["url"] = "https://127.0.0.1:9/mutate"
    registrations.create_mutating_webhook_configuration(lenient)
    assert core_v1.create_namespaced_pod("default", pod("p")).metadata.labels == {}


@pytest.mark.timing
def test_a_slow_webhook_times_out(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    webhook.delay_s = 3.0
    registrations.create_mutating_webhook_configuration(configuration(webhook, timeoutSeconds=1))
    error = api_error(core_v1.create_namespaced_pod, "default", pod("p"))
    assert error.status == 500
    assert "Timeout" in error.message


def test_dry_run_calls_the_webhook_and_stores_nothing(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    registrations.create_mutating_webhook_configuration(configuration(webhook))
    answer = core_v1.create_namespaced_pod("default", pod("p"), dry_run="All")
    assert answer.metadata.labels == {"mutated": "yes"}
    assert webhook.reviews[0]["request"]["dryRun"] is True
    assert core_v1.list_namespaced_pod("default").items == []


def test_dry_run_is_refused_by_a_webhook_with_side_effects(
    webhook: Webhook,
    registrations: Api,
    core_v1: Api,
) -> None:
    registrations.create_mutating_webhook_configuration(configuration(webhook, sideEffects="Some"))
    error = api_error(core_v1.create_namespaced_pod, "default", pod("p"), dry_run="All")
    assert error.status == 400
    assert "does not support dry run" in error.message
    assert webhook.reviews == []


def test_a_denial_is_returned_with_its_message(kube_api: KubeApi) -> None:
    def deny(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "allowed": False,
            "status": {"code": 403, "message": "tensor-fusion.ai/tflops: bad"},
        }

    with webhook_server(deny) as hook, http(kube_api) as client:
        client.post(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            json=configuration(hook),
        )
        denied = client.post("/api/v1/namespaces/default/pods", json=pod("p"))
        listed = client.get("/api/v1/pods").json()["items"]
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        'admission webhook "tf.tensor-fusion.ai" denied the request: tensor-fusion.ai/tflops: bad'
    )
    assert listed == []
