"""The kubelet stand-in (tests/kube/kubelet.py) that the end-to-end tests run pods with: what
it resolves as the kubelet does (fieldRefs, `$(NAME)`, emptyDir, hostPath with subPathExpr,
init containers first), what it refuses, and that deleting the pod kills its processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.store.kube import KubeStore
from tests.kube.kubelet import KubeletStandIn, StandInNode, resolved_env
from tests.kube.runner import KubeApi

WRITER = r"""
import os, sys, pathlib
pathlib.Path(sys.argv[1]).write_text(os.environ["GREETING"] + " " + os.environ["SEEN"])
print("in", os.environ["POD_NAME"], sys.argv[2], flush=True)
"""


def _pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": {"note": "hi"}},
        "spec": {"nodeName": node, "restartPolicy": "Never", **spec},
    }


def _env() -> list[dict[str, Any]]:
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "NOTE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
        },
        {"name": "GREETING", "value": "$(NOTE) from $(POD_NAME) $(UNKNOWN)"},
        {"name": "SEEN", "value": "/data/seen"},
    ]


def _wait_phase(store: KubeStore, name: str, phases: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = store.get("Pod", name, "default")
        if (pod.get("status") or {}).get("phase") in phases:
            return pod
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {phases}: {pod.get('status')}")


def test_env_resolves_field_refs_and_earlier_references() -> None:
    pod = _pod("p", "n1", containers=[{"name": "c", "env": _env()}])
    pod["metadata"]["uid"] = "u"
    env = resolved_env(pod, pod["spec"]["containers"][0])
    assert env["GREETING"] == "hi from p $(UNKNOWN)"


def test_a_pod_runs_with_its_volumes_env_and_init_containers(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    host = tmp_path / "host-run"
    node = StandInNode("n1", {"/run": host}, {})
    mount = {"name": "shared", "mountPath": "/data", "subPathExpr": "$(POD_NAME)"}
    pod = _pod(
        "writer",
        "n1",
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "shared", "hostPath": {"path": "/run/x", "type": "DirectoryOrCreate"}},
        ],
        initContainers=[
            {
                "name": "first",
                "command": ["python3", "-c", "import sys; open(sys.argv[1], 'w').write('init')"],
                "args": ["/scratch/mark"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
        containers=[
            {
                "name": "main",
                "command": ["python3", "-c", WRITER, "/data/out", "$(POD_NAME)"],
                "env": [*_env(), {"name": "MARK", "value": "/scratch/mark"}],
                "volumeMounts": [mount, {"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
    )
    with (
        KubeStore(kube_api.kubeconfig) as store,
        KubeletStandIn(kube_api.kubeconfig, [node], tmp_path / "pods") as kubelet,
    ):
        store.create(pod)
        _wait_phase(store, "writer", {"Succeeded", "Failed"})
        run = kubelet.run_of("default", "writer")
        assert run.exit_codes == {"first": 0, "main": 0}, kubelet.logs("default", "writer", "main")
        written = host / "x" / "writer" / "out"
        assert written.read_text() == f"hi from writer $(UNKNOWN) {host / 'x' / 'writer' / 'seen'}"
        assert kubelet.logs("default", "writer", "main") == "in writer writer\n"


def test_an_unmapped_host_path_fails_the_pod_naming_the_volume(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    node = StandInNode("n1", {"/run": tmp_path}, {})
    pod = _pod(
        "lost",
        "n1",
        volumes=[{"name": "etc", "hostPath": {"path": "/etc/x"}}],
        containers=[{"name": "main", "command": ["python3", "-c", "pass"]}],
    )
    with (
        KubeStore(kube_api.kubeconfig) as store,
        KubeletStandIn(kube_api.kubeconfig, [node], tmp_path / "pods"),
    ):
        store.create(pod)
        failed = _wait_phase(store, "lost", {"Failed", "Succeeded"})
        assert failed["status"]["phase"] == "Failed"
        assert "volumes[etc].hostPath.path '/etc/x'" in failed["status"]["message"]


def test_pods_of_other_nodes_are_left_alone(kube_api: KubeApi, tmp_path: Path) -> None:
    node = StandInNode("n1", {}, {})
    pod = _pod("elsewhere", "n2", containers=[{"name": "main", "command": ["true"]}])
    with (
        KubeStore(kube_api.kubeconfig) as store,
        KubeletStandIn(kube_api.kubeconfig, [node], tmp_path / "pods") as kubelet,
    ):
        store.create(pod)
        with pytest.raises(TimeoutError):
            kubelet.run_of("default", "elsewhere", timeout_s=1.0)


def test_deleting_the_pod_kills_its_processes(kube_api: KubeApi, tmp_path: Path) -> None:
    node = StandInNode("n1", {}, {})
    sleeper = ["python3", "-c", "import time; print('up', flush=True); time.sleep(600)"]
    pod = _pod("sleeper", "n1", containers=[{"name": "main", "command": sleeper}])
    with (
        KubeStore(kube_api.kubeconfig) as store,
        KubeletStandIn(kube_api.kubeconfig, [node], tmp_path / "pods") as kubelet,
    ):
        store.create(pod)
        _wait_phase(store, "sleeper", {"Running"})
        run = kubelet.run_of("default", "sleeper")
        process = run.processes["main"]
        store.delete("Pod", "sleeper", "default")
        assert run.done.wait(30)
        assert process.returncode == -signal.SIGKILL
