"""The controller's pod webhook called by the API-server emulator as kube-apiserver calls it
(HTTPS, the caBundle, the enabled label's objectSelector, failurePolicy Fail): an enabled pod
is stored converted and bound, one it cannot read is refused naming the annotation, the rest
are untouched, and while the webhook is down only enabled pods are refused."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import trustme

from tensorfusion.api.annotations import ENABLED_LABEL, GPU_POOL, QOS, VRAM_LIMIT
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.cli import main
from tensorfusion.store.kube import KubeStore
from tensorfusion.webhook.admission_review import WEBHOOK_PATH
from tensorfusion.webhook.serving_certs import CERT_FILE, KEY_FILE
from tensorfusion.webhook.shim_injection import INIT_CONTAINER, SHIM_PATH
from tests.controller.cluster import (
    RunningController,
    fleet_store,
    guide_pod,
    running_controller,
    wait_for,
)
from tests.kube.helpers import Api, api_error
from tests.kube.runner import KubeApi

WEBHOOK_NAME = "mutate-pod.tensor-fusion.ai"


def webhook_configuration(url: str, ca_bundle: str) -> dict[str, Any]:
    """As the chart registers it: Pod CREATE, the enabled label, failurePolicy Fail."""
    return {
        "metadata": {"name": "tensor-fusion-pod"},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {"url": url, "caBundle": ca_bundle},
                "objectSelector": {"matchLabels": {ENABLED_LABEL: "true"}},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with fleet_store(kube_api.kubeconfig, nodes=2, gpus_per_node=2) as store:
        yield store


@pytest.fixture
def controller(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path, api_client: kubernetes.client.ApiClient
) -> Iterator[RunningController]:
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(certs / CERT_FILE))
    issued.private_key_pem.write_to_path(str(certs / KEY_FILE))
    with running_controller(
        kube_api.kubeconfig, tmp_path / "state", webhook_cert_dir=certs
    ) as running:
        assert running.webhook is not None
        bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
        configuration = webhook_configuration(running.webhook.url + WEBHOOK_PATH, bundle)
        registrations: Api = kubernetes.client.AdmissionregistrationV1Api(api_client)
        registrations.create_mutating_webhook_configuration(configuration)
        yield running


def without_scheduler(pod: dict[str, Any]) -> dict[str, Any]:
    del pod["spec"]["schedulerName"]
    return pod


@pytest.mark.timing  # the scheduler's pass
def test_the_guides_pod_is_stored_converted_and_bound(
    store: KubeStore, controller: RunningController
) -> None:
    store.create(without_scheduler(guide_pod("r9")))
    stored = store.get("Pod", "r9", "default")
    assert stored["spec"]["schedulerName"] == SCHEDULER_NAME
    assert stored["metadata"]["annotations"][QOS] == "high"
    assert stored["metadata"]["annotations"][GPU_POOL]
    assert [c["name"] for c in stored["spec"]["initContainers"]] == [INIT_CONTAINER]
    env = {item["name"]: item for item in stored["spec"]["containers"][0]["env"]}
    assert env["LD_PRELOAD"]["value"] == SHIM_PATH
    wait_for(
        "the pod to be bound",
        lambda: store.get("Pod", "r9", "default")["spec"].get("nodeName"),
    )


@pytest.mark.timing  # the controller's start
def test_a_pod_it_cannot_read_is_refused_naming_the_annotation(
    controller: RunningController, core_v1: Api
) -> None:
    pod = without_scheduler(guide_pod("bad"))
    pod["metadata"]["annotations"][VRAM_LIMIT] = "16Gx"
    failure = api_error(core_v1.create_namespaced_pod, "default", pod)
    assert failure.status == 403
    assert f'admission webhook "{WEBHOOK_NAME}" denied the request' in failure.message
    assert f"{VRAM_LIMIT}: " in failure.message
    assert api_error(core_v1.read_namespaced_pod, "bad", "default").status == 404


@pytest.mark.timing  # the controller's start
def test_a_pod_labelled_not_enabled_is_stored_unchanged(
    store: KubeStore, controller: RunningController
) -> None:
    pod = without_scheduler(guide_pod("rolled-back"))
    pod["metadata"]["labels"][ENABLED_LABEL] = "false"
    store.create(pod)
    stored = store.get("Pod", "rolled-back", "default")
    assert stored["spec"]["schedulerName"] == "default-scheduler"  # the API server's default
    assert stored["metadata"]["annotations"] == pod["metadata"]["annotations"]
    assert stored["spec"]["containers"] == pod["spec"]["containers"]


@pytest.mark.timing  # the controller's start
def test_with_the_webhook_down_only_enabled_pods_are_refused(
    store: KubeStore, controller: RunningController, core_v1: Api
) -> None:
    assert controller.webhook is not None
    controller.webhook.stop()
    failure = api_error(
        core_v1.create_namespaced_pod, "default", without_scheduler(guide_pod("refused"))
    )
    assert failure.status == 500
    assert f'failed calling webhook "{WEBHOOK_NAME}"' in failure.message
    core_v1.create_namespace({"metadata": {"name": "other"}})
    for namespace in ("default", "other"):
        plain = without_scheduler(guide_pod("plain"))
        del plain["metadata"]["labels"]
        plain["metadata"]["namespace"] = namespace
        core_v1.create_namespaced_pod(namespace, plain)
        assert store.get("Pod", "plain", namespace)["metadata"]["name"] == "plain"


def test_the_command_refuses_a_cert_dir_without_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [f"-webhook-cert-dir={tmp_path}", f"-kubeconfig={tmp_path / 'kubeconfig'}"]
    assert main(["controller", *argv]) == 2
    err = capsys.readouterr().err
    assert f"--webhook-cert-dir: needs {CERT_FILE} and {KEY_FILE} in {tmp_path}" in err
