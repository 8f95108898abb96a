"""The real kubectl v1.35 and helm v4 against the emulator."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kube.runner import KubeApi
from tests.kube_tools import KubeTools, run_tool

CRDS = Path(__file__).parents[2] / "charts" / "tensor-fusion" / "crds"
POD = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: x}}
spec:
  containers: [{name: main, image: busybox, env: [{name: A, value: "1"}]}]
"""
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: mini\nversion: 0.1.0\n",
    "templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-cm'}\n"
        "data: {value: '{{ .Values.value | default \"one\" }}'}\n"
    ),
}


def _run(tool: Path, kube_api: KubeApi, *args: str, stdin: str | None = None) -> str:
    return run_tool(tool, kube_api.kubeconfig, *args, stdin=stdin)


def test_kubectl_applies_crds_and_works_with_pods(kube_api: KubeApi, kube_tools: KubeTools) -> None:
    kubectl = kube_tools.kubectl
    _run(kubectl, kube_api, "apply", "-f", str(CRDS))
    _run(
        kubectl,
        kube_api,
        "wait",
        "--for=condition=established",
        "crd/gpus.tensor-fusion.ai",
        "--timeout=20s",
    )
    assert "tensorfusionclusters" in _run(
        kubectl, kube_api, "api-resources", "--api-group=tensor-fusion.ai"
    )
    assert _run(kubectl, kube_api, "apply", "-f", "-", stdin=POD).strip() == "pod/p created"
    _run(kubectl, kube_api, "apply", "-f", "-", stdin=POD.replace('value: "1"', 'value: "2"'))
    _run(kubectl, kube_api, "patch", "pod", "p", "-p", '{"metadata":{"labels":{"patched":"yes"}}}')
    shown = _run(
        kubectl,
        kube_api,
        "get",
        "pod",
        "p",
        "-o",
        "jsonpath={.metadata.labels.patched} {.spec.containers[0].env[0].value}",
    )
    assert shown == "yes 2"
    watched = _run(kubectl, kube_api, "get", "pods", "-w", "--request-timeout=3s", "-o", "name")
    assert "pod/p" in watched
    _run(kubectl, kube_api, "create", "configmap", "cm", "--from-literal=a=b")  # protobuf body
    assert _run(kubectl, kube_api, "get", "cm", "cm", "-o", "jsonpath={.data.a}") == "b"


def test_helm_installs_upgrades_and_uninstalls(
    kube_api: KubeApi, kube_tools: KubeTools, tmp_path: Path
) -> None:
    for name, text in CHART.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    helm, kubectl = kube_tools.helm, kube_tools.kubectl
    _run(helm, kube_api, "install", "rel", str(tmp_path))
    _run(helm, kube_api, "upgrade", "rel", str(tmp_path), "--set", "value=two")
    assert _run(kubectl, kube_api, "get", "cm", "rel-cm", "-o", "jsonpath={.data.value}") == "two"
    assert "deployed" in _run(helm, kube_api, "list")
    secrets = _run(kubectl, kube_api, "get", "secrets", "-l", "owner=helm", "-o", "name").split()
    assert secrets == ["secret/sh.helm.release.v1.rel.v1", "secret/sh.helm.release.v1.rel.v2"]
    _run(helm, kube_api, "uninstall", "rel")
    assert _run(kubectl, kube_api, "get", "cm,secrets", "-o", "name") == ""


@pytest.mark.parametrize("tool", ["kubectl", "helm"])
def test_the_tools_are_the_promised_versions(kube_tools: KubeTools, tool: str) -> None:
    path = getattr(kube_tools, tool)
    args = ["version", "--client"] if tool == "kubectl" else ["version", "--short"]
    shown = subprocess.run([str(path), *args], capture_output=True, text=True, check=False).stdout
    assert ("v1.35." if tool == "kubectl" else "v4.") in shown
