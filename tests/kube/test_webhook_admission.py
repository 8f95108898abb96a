"""The controller's pod webhook called by the API-server emulator as kube-apiserver calls it
(HTTPS, the caBundle, the enabled label's objectSelector, failurePolicy Fail): an enabled pod
is stored converted and bound, one it cannot read is refused naming the annotation, the rest
are untouched. The webhook's registration is `webhook_configuration.py`'s, as the chart
installs it; `test_webhook_down.py` has what happens while the webhook cannot answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tensorfusion.api.annotations import ENABLED_LABEL, GPU_POOL, QOS, VRAM_LIMIT
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.cli import main
from tensorfusion.store.kube import KubeStore
from tensorfusion.webhook.serving_certs import CERT_FILE, KEY_FILE
from tensorfusion.webhook.shim_injection import INIT_CONTAINER, SHIM_PATH
from tests.controller.cluster import NAMESPACE, RunningController, fleet_store, guide_pod, wait_for
from tests.kube.helpers import Api, api_error
from tests.kube.runner import KubeApi
from tests.kube.webhook_configuration import (
    WEBHOOK_NAME,
    register,
    served_webhook,
    webhook_configuration,
)


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with fleet_store(kube_api.kubeconfig, nodes=2, gpus_per_node=2) as store:
        yield store


@pytest.fixture
def controller(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path, api_client: kubernetes.client.ApiClient
) -> Iterator[RunningController]:
    with served_webhook(kube_api.kubeconfig, tmp_path) as webhook:
        register(
            api_client,
            webhook_configuration(webhook.url, webhook.ca_bundle, release_namespace=NAMESPACE),
        )
        yield webhook.running


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


def test_the_command_refuses_a_cert_dir_without_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [f"-webhook-cert-dir={tmp_path}", f"-kubeconfig={tmp_path / 'kubeconfig'}"]
    assert main(["controller", *argv]) == 2
    err = capsys.readouterr().err
    assert f"--webhook-cert-dir: needs {CERT_FILE} and {KEY_FILE} in {tmp_path}" in err
