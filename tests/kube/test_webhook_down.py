"""The pod webhook's registration (`webhook_configuration.py`, as the chart installs it) in the
API-server emulator, which selects and calls webhooks as kube-apiserver does: which pods are
sent at all, and what a cluster still admits while the controller's webhook cannot answer.

kube-system and the release namespace are never sent to any webhook, whatever the pods'
labels, so their pods are created (unconverted) even while the webhook is down; with
progressive migration, pods without the enabled label elsewhere go to a second webhook whose
failurePolicy is Ignore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tensorfusion.api.annotations import ENABLED_LABEL
from tests.controller.cluster import NAMESPACE, apply_crds
from tests.kube.admission import WebhookCall, recorded_calls
from tests.kube.helpers import Api, api_error, pod
from tests.kube.runner import KubeApi
from tests.kube.webhook_configuration import (
    NAMESPACE_NAME_LABEL,
    NATIVE_WEBHOOK_NAME,
    SYSTEM_NAMESPACE,
    WEBHOOK_NAME,
    register,
    served_webhook,
    webhook_configuration,
)
from tests.kube.webhook_server import label_patch, webhook_server

OTHER = "team-a"
PASSED_LABEL = "admitted-by"


def enabled_pod(name: str) -> dict[str, Any]:
    return pod(name, labels={ENABLED_LABEL: "true"})


def create_pods(core_v1: Api, namespaces: tuple[str, ...]) -> None:
    """An enabled pod and a native (unlabelled) one in each of `namespaces`."""
    for namespace in namespaces:
        core_v1.create_namespaced_pod(namespace, enabled_pod("enabled"))
        core_v1.create_namespaced_pod(namespace, pod("native"))


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"release_namespace": NAMESPACE, "failure_policy": "fail"}, "failurePolicy: "),
        ({"release_namespace": NAMESPACE, "failure_policy": ""}, "failurePolicy: "),
        ({"release_namespace": ""}, "release_namespace: required"),
    ],
)
def test_a_bad_argument_is_refused_naming_it(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        webhook_configuration("https://127.0.0.1:9443/mutate-v1-pod", "", **arguments)


@pytest.mark.parametrize(
    ("migration", "sent"),
    [
        (False, [(WEBHOOK_NAME, "enabled")]),
        (True, [(WEBHOOK_NAME, "enabled"), (NATIVE_WEBHOOK_NAME, "native")]),
    ],
)
def test_system_and_release_namespaces_are_never_sent_to_a_webhook(
    core_v1: Api,
    api_client: kubernetes.client.ApiClient,
    migration: bool,
    sent: list[tuple[str, str]],
) -> None:
    """A webhook that answers every call and counts them stands in for the controller's."""
    with webhook_server(label_patch(PASSED_LABEL, "webhook")) as hook:
        register(
            api_client,
            webhook_configuration(
                hook.url, hook.ca_bundle, release_namespace=NAMESPACE, migration=migration
            ),
        )
        core_v1.create_namespace({"metadata": {"name": NAMESPACE}})
        core_v1.create_namespace({"metadata": {"name": OTHER}})
        with recorded_calls() as calls:
            create_pods(core_v1, (SYSTEM_NAMESPACE, NAMESPACE, OTHER))
    # Selected by kubernetes.io/metadata.name, which the API server sets on each namespace.
    for namespace in (SYSTEM_NAMESPACE, NAMESPACE, OTHER):
        labels = core_v1.read_namespace(namespace).metadata.labels
        assert labels[NAMESPACE_NAME_LABEL] == namespace
    assert {r["request"]["namespace"] for r in hook.reviews} == {OTHER}
    assert [(call.webhook, call.namespace) for call in calls] == [
        (webhook, OTHER) for webhook, _ in sent
    ]
    assert [r["request"]["name"] for r in hook.reviews] == [name for _, name in sent]
    for namespace in (SYSTEM_NAMESPACE, NAMESPACE):
        for name in ("enabled", "native"):
            labels = core_v1.read_namespaced_pod(name, namespace).metadata.labels or {}
            assert PASSED_LABEL not in labels


@contextmanager
def webhook_down(
    kube_api: KubeApi, work_dir: Path, api_client: kubernetes.client.ApiClient, migration: bool
) -> Iterator[None]:
    """The controller's webhook registered (failurePolicy Fail), then stopped."""
    apply_crds(kube_api.kubeconfig)
    with served_webhook(
        kube_api.kubeconfig, work_dir, nvidia_operator_progressive_migration=migration
    ) as webhook:
        register(
            api_client,
            webhook_configuration(
                webhook.url, webhook.ca_bundle, release_namespace=NAMESPACE, migration=migration
            ),
        )
        assert webhook.running.webhook is not None
        webhook.running.webhook.stop()
        yield


def assert_stored_as_sent(core_v1: Api, namespace: str, sent: dict[str, Any]) -> None:
    stored = core_v1.api_client.sanitize_for_serialization(
        core_v1.read_namespaced_pod(sent["metadata"]["name"], namespace)
    )
    assert stored["metadata"]["labels"] == sent["metadata"]["labels"]
    assert stored["spec"]["containers"] == sent["spec"]["containers"]
    assert "initContainers" not in stored["spec"]


def assert_refused(core_v1: Api, namespace: str) -> None:
    failure = api_error(core_v1.create_namespaced_pod, namespace, enabled_pod("refused"))
    assert failure.status == 500
    assert f'failed calling webhook "{WEBHOOK_NAME}"' in failure.message
    assert api_error(core_v1.read_namespaced_pod, "refused", namespace).status == 404


@pytest.mark.timing  # the controller's start
def test_with_the_webhook_down_only_enabled_pods_are_refused(
    kube_api: KubeApi, tmp_path: Path, api_client: kubernetes.client.ApiClient, core_v1: Api
) -> None:
    core_v1.create_namespace({"metadata": {"name": OTHER}})
    with webhook_down(kube_api, tmp_path, api_client, migration=False), recorded_calls() as calls:
        assert_refused(core_v1, "default")
        for namespace in ("default", OTHER):
            core_v1.create_namespaced_pod(namespace, pod("native"))
            assert_stored_as_sent(core_v1, namespace, pod("native"))
    assert [(call.webhook, call.failed) for call in calls] == [(WEBHOOK_NAME, True)]


@pytest.mark.timing  # the controller's start
def test_with_migration_and_the_webhook_down_native_pods_pass_and_system_pods_are_not_sent(
    kube_api: KubeApi, tmp_path: Path, api_client: kubernetes.client.ApiClient, core_v1: Api
) -> None:
    core_v1.create_namespace({"metadata": {"name": NAMESPACE}})
    core_v1.create_namespace({"metadata": {"name": OTHER}})
    with webhook_down(kube_api, tmp_path, api_client, migration=True), recorded_calls() as calls:
        create_pods(core_v1, (SYSTEM_NAMESPACE, NAMESPACE))
        assert calls == []
        for namespace in (SYSTEM_NAMESPACE, NAMESPACE):
            assert_stored_as_sent(core_v1, namespace, enabled_pod("enabled"))
            assert_stored_as_sent(core_v1, namespace, pod("native"))
        core_v1.create_namespaced_pod(OTHER, pod("native"))  # its webhook's policy is Ignore
        assert_stored_as_sent(core_v1, OTHER, pod("native"))
        assert_refused(core_v1, OTHER)
    assert calls == [
        WebhookCall(NATIVE_WEBHOOK_NAME, OTHER, calls[0].duration_s, failed=True),
        WebhookCall(WEBHOOK_NAME, OTHER, calls[1].duration_s, failed=True),
    ]
