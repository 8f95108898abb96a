"""`tensor-fusion controller` as the chart runs it, a process of its own against the
API-server emulator: it announces its listeners, answers the probes and the API, schedules,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import add_fleet, apply_crds, guide_pod, wait_for
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing  # the process's start and the scheduler's passes

URL = re.compile(r"(?:probes on|management API on) (http://\S+?)(?:/healthz|\s)")


def test_the_command_serves_schedules_and_stops_on_sigterm(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig) as store:
        add_fleet(store, nodes=2, gpus_per_node=2)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorfusion.cli",
                "controller",
                f"-kubeconfig={kube_api.kubeconfig}",
                "-leader-elect",
                "-enable-auto-scale",
                "--api-bind-address=127.0.0.1:0",
                "--health-probe-bind-address",
                "127.0.0.1:0",
                f"-state-dir={tmp_path / 'state'}",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        stderr = process.stderr
        assert stderr is not None

        def read() -> None:
            for line in stderr:
                lines.put(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            seen: list[str] = []

            def urls() -> list[str] | None:
                while not lines.empty():
                    seen.append(lines.get())
                found = [m.group(1) for line in seen for m in [URL.search(line)] if m]
                return found if len(found) == 2 else None

            probes, api = wait_for("both listeners", urls)
            assert any("--enable-auto-scale is not implemented yet" in line for line in seen)
            assert httpx.get(f"{probes}/healthz").status_code == 200
            wait_for("readiness", lambda: httpx.get(f"{probes}/readyz").status_code == 200)
            store.create(guide_pod("by-the-command"))
            wait_for(
                "the pod to be bound",
                lambda: store.get("Pod", "by-the-command", "default")["spec"].get("nodeName"),
            )
            assert "by-the-command" in httpx.get(f"{api}/api/allocation").text
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
            reader.join()
    while not lines.empty():
        seen.append(lines.get())
    assert code == 0, "".join(seen)
