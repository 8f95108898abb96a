"""`tensor-fusion controller` as the chart runs it, a process of its own against the
API-server emulator: it announces its listeners, answers the probes and the API, schedules,
and stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import add_fleet, apply_crds, guide_pod, wait_for
from tests.controller.process import ControllerProcess
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing  # the process's start and the scheduler's passes


def test_the_command_serves_schedules_and_stops_on_sigterm(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig) as store:
        add_fleet(store, nodes=2, gpus_per_node=2)
        with ControllerProcess(
            f"-kubeconfig={kube_api.kubeconfig}",
            "-leader-elect",
            "-enable-auto-scale",
            "--api-bind-address=127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
            f"-state-dir={tmp_path / 'state'}",
        ) as controller:
            announced = controller.wait_announced()
            warning = "--enable-auto-scale is not implemented yet"
            assert any(warning in line for line in controller.lines)
            probes = announced.probes
            assert httpx.get(f"{probes}/healthz").status_code == 200
            wait_for("readiness", lambda: httpx.get(f"{probes}/readyz").status_code == 200)
            store.create(guide_pod("by-the-command"))
            wait_for(
                "the pod to be bound",
                lambda: store.get("Pod", "by-the-command", "default")["spec"].get("nodeName"),
            )
            assert "by-the-command" in httpx.get(f"{announced.api}/api/allocation").text
    # stopped on SIGTERM as it left the block
    assert controller.process.returncode == 0, controller.output
