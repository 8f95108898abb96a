"""`helm install`, `upgrade` and `uninstall` of the chart with the real helm v4 and kubectl.
No kube-apiserver can run here, so the cluster is the API-server emulator (tests/kube); after
the install, the controller runs as a local process and one node agent in this process (on
the fake NVML of tests/kube/node_agents.py, as no GPU exists here), each with exactly the
args, env and mounted ConfigMap/Secret contents that the installed Deployment and DaemonSet
give their containers (files written under a temporary directory that stands for the
container's filesystem; listeners moved to free loopback ports). GreptimeDB is the stand-in
of tests/unit/metrics, given to the chart as an external GreptimeDB (R2)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tensorfusion.agent.kube_agent import KubeAgentConfig
from tensorfusion.cli_agent import add_agent_command
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import guide_pod, wait_for
from tests.controller.process import ControllerProcess
from tests.kube.conftest import kube_api, kube_tools  # noqa: F401 (fixtures)
from tests.kube.kubelet import field_value
from tests.kube.node_agents import FakeNvml, running_agent
from tests.kube.runner import KubeApi
from tests.kube_tools import KubeTools, run_tool
from tests.unit.metrics.greptime_standin import Server, StandIn

CHART = Path(__file__).parents[2] / "charts" / "tensor-fusion"
RELEASE = NAMESPACE = "tensor-fusion-sys"
CONTROLLER = f"{RELEASE}-controller"
AGENT = f"{RELEASE}-agent"
SECRET = "tensor-fusion-webhook-secret"
WEBHOOKS = "tensor-fusion-pod"
GPU_NODE = "gpu-node-1"
_LISTENER = re.compile(r"^(?P<flag>--?[\w-]+=)?:\d+$")
_WEBHOOK_PORT = re.compile(r"^(?P<flag>--?webhook-port=)\d+$")
_WEBHOOK_URL = re.compile(r"pod webhook on https://\S+?:(\d+)/")


@dataclass(frozen=True)
class Cluster:
    api: KubeApi
    tools: KubeTools

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.tools.helm), "--kubeconfig", str(self.api.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def kubectl(self, *args: str) -> str:
        return run_tool(self.tools.kubectl, self.api.kubeconfig, *args)

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        )
        return found

    def names(self, kinds: str) -> list[str]:
        return self.kubectl("get", kinds, "-A", "-o", "name").split()


@pytest.fixture
def cluster(kube_api: KubeApi, kube_tools: KubeTools) -> Cluster:  # noqa: F811
    return Cluster(kube_api, kube_tools)


def _install(cluster: Cluster, *values: str) -> None:
    done = cluster.helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", *values
    )
    assert done.returncode == 0, done.stderr


def _secret_data(cluster: Cluster, name: str) -> dict[str, bytes]:
    data = cluster.get("secret", name).get("data") or {}
    return {key: base64.b64decode(value) for key, value in data.items()}


def _ca_bundle(cluster: Cluster) -> bytes:
    configuration = cluster.get("mutatingwebhookconfiguration", WEBHOOKS, "")
    bundles = {hook["clientConfig"]["caBundle"] for hook in configuration["webhooks"]}
    (bundle,) = bundles
    return base64.b64decode(bundle)


def test_install_upgrade_uninstall_keep_the_webhook_certificate(cluster: Cluster) -> None:
    _install(cluster)
    assert "crd/" not in cluster.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/gpus.tensor-fusion.ai" in cluster.names(
        "crd"
    )
    first = _secret_data(cluster, SECRET)
    assert _ca_bundle(cluster) == first["ca.crt"]
    ca = x509.load_pem_x509_certificate(first["ca.crt"])
    serving = x509.load_pem_x509_certificate(first["tls.crt"])
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{CONTROLLER}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert cluster.get("deployment", CONTROLLER)["spec"]["replicas"] == 1
    assert "poddisruptionbudget" not in " ".join(cluster.names("pdb"))

    upgraded = cluster.helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "controller.replicaCount=2"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert cluster.get("deployment", CONTROLLER)["spec"]["replicas"] == 2
    assert cluster.names("pdb") == [f"poddisruptionbudget.policy/{CONTROLLER}"]
    assert _secret_data(cluster, SECRET) == first  # read back by `lookup`, not made anew
    assert _ca_bundle(cluster) == first["ca.crt"]

    removed = cluster.helm("uninstall", RELEASE, "-n", NAMESPACE)
    assert removed.returncode == 0, removed.stderr
    assert cluster.names("deployments,daemonsets,secrets,mutatingwebhookconfigurations") == []
    # Kept on uninstall, as upstream keeps them: pools and their workloads outlive the chart.
    kept = cluster.names("tensorfusionclusters,schedulingconfigtemplates")
    assert kept == [
        "tensorfusioncluster.tensor-fusion.ai/tensor-fusion",
        "schedulingconfigtemplate.tensor-fusion.ai/default",
    ]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (
            ["--set", "controller.replicaCout=2"],
            "at '/controller': additional properties 'replicaCout'",
        ),
        (["--set-string", "controller.replicaCount=two"], "at '/controller/replicaCount'"),
        (["--set", "greptime.persistence.enable=true"], "'enable' not allowed"),
    ],
    ids=["unknown-key", "wrong-type", "unknown-nested-key"],
)
def test_bad_values_fail_the_install_naming_the_field(
    cluster: Cluster, values: list[str], named: str
) -> None:
    done = cluster.helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", *values
    )
    assert done.returncode != 0
    assert named in done.stderr
    assert cluster.helm("list", "-A", "-q").stdout == ""
    assert cluster.names("deployments,secrets") == []


@dataclass
class Container:
    """A container as its pod would run it here: argv after the program, and env."""

    program: list[str]
    args: list[str]
    env: dict[str, str]


def _local_listener(arg: str) -> str:
    """A listener of the pod's network namespace, moved to a free loopback port."""
    if match := _LISTENER.match(arg):
        return f"{match['flag'] or ''}127.0.0.1:0"
    if match := _WEBHOOK_PORT.match(arg):
        return f"{match['flag']}0"
    return arg


def _rewritten(value: str, mounts: list[tuple[str, Path]]) -> str:
    """`value` (or a `-flag=value`'s value) with a path under a mount (longest first) made
    the directory standing for it."""
    flag, equals, path = value.partition("=") if value.startswith("-") else ("", "", value)
    for mount_path, local in mounts:
        if path == mount_path or path.startswith(mount_path + "/"):
            return f"{flag}{equals}{local}{path[len(mount_path) :]}"
    return value


def _container(cluster: Cluster, pod: Mapping[str, Any], name: str, root: Path) -> Container:
    """What the kubelet would give container `name` of `pod` (a pod template bound to a
    node): its mounts written under `root`, env resolved, paths and listeners mapped."""
    spec = pod["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == name]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    mounts = []
    for mount in container.get("volumeMounts", []):
        local = root / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        source = volume.get("configMap") or volume.get("secret")
        if source is not None:
            kind = "configmap" if "configMap" in volume else "secret"
            object_name = source.get("name") or source.get("secretName")
            data = cluster.get(kind, object_name).get("data") or {}
            if kind == "secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                target = local / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
        mounts.append((mount["mountPath"].rstrip("/"), local))
    mounts.sort(key=lambda mount: -len(mount[0]))
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        data = cluster.get("secret", source["secretRef"]["name"]).get("data") or {}
        env |= {k: base64.b64decode(v).decode() for k, v in data.items()}
    for item in container.get("env", []):
        if "valueFrom" in item:
            env[item["name"]] = field_value(pod, item["valueFrom"]["fieldRef"]["fieldPath"])
        else:
            env[item["name"]] = _rewritten(item["value"], mounts)
    args = [_local_listener(_rewritten(arg, mounts)) for arg in container.get("args", [])]
    return Container(container["command"], args, env)


def _bound(template: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The pod a controller makes from `template`, bound to `node`."""
    return {"metadata": template["metadata"], "spec": {**template["spec"], "nodeName": node}}


def _gpu_node(selector: Mapping[str, str]) -> dict[str, Any]:
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": GPU_NODE, "labels": {"kubernetes.io/hostname": GPU_NODE, **selector}},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def _agent_config(container: Container) -> KubeAgentConfig:
    """The agent's configuration, parsed from the container's args by its own command line."""
    assert container.program == ["tensor-fusion", "agent"]
    parser = argparse.ArgumentParser()
    add_agent_command(parser.add_subparsers())
    args = parser.parse_args(["agent", *container.args])
    return KubeAgentConfig(
        node=container.env["NODE_NAME"],
        regions_root=Path(args.regions_root),
        spill_root=Path(args.spill_root),
        state_dir=Path(args.state_dir),
        checkpoint=Path(args.kubelet_checkpoint),
        interval_s=args.interval,
    )


@pytest.fixture
def greptime() -> Iterator[StandIn]:
    with Server(StandIn()) as state:
        yield state


@pytest.mark.timing  # the agent's and the scheduler's passes
def test_the_installed_controller_and_agent_schedule_the_guides_pod(
    cluster: Cluster, greptime: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    external = greptime.environ()
    values = tmp_path / "values-external-greptime.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "greptime": {
                    "installStandalone": False,
                    "host": external["GREPTIME_HOST"],
                    "port": int(external["GREPTIME_PORT"]),
                    "user": greptime.user,
                    "password": greptime.password,
                },
                "agent": {"interval": 0.2},
            }
        )
    )
    _install(cluster, "-f", str(values))
    daemonset = cluster.get("daemonset", AGENT)["spec"]["template"]
    selector = daemonset["spec"]["nodeSelector"]
    assert selector == {"nvidia.com/gpu.present": "true"}  # initialGpuNodeLabelSelector
    with KubeStore(cluster.api.kubeconfig) as store:
        store.create(_gpu_node(selector))  # as its kubelet registers it
    deployment = cluster.get("deployment", CONTROLLER)["spec"]["template"]
    controller = _container(
        cluster, _bound(deployment, "node-0"), "controller", tmp_path / "controller"
    )
    agent = _container(cluster, _bound(daemonset, GPU_NODE), "agent", tmp_path / "agent")
    assert controller.program == ["tensor-fusion", "controller"]
    assert {k: controller.env[k] for k in external} == external  # from the chart's Secret
    # The service account's token stands for in-cluster credentials.
    monkeypatch.setenv("KUBECONFIG", str(cluster.api.kubeconfig))
    for name, value in controller.env.items():
        monkeypatch.setenv(name, value)
    with (
        ControllerProcess(*controller.args) as process,
        running_agent(cluster.api.kubeconfig, _agent_config(agent), FakeNvml(GPU_NODE)),
    ):
        process.wait_announced()
        port = wait_for("the webhook's port", lambda: _WEBHOOK_URL.search(process.output))
        cluster.api.route_service(NAMESPACE, CONTROLLER, 9443, ("127.0.0.1", int(port[1])))
        with KubeStore(cluster.api.kubeconfig) as store:
            wait_for(
                "the node's GPUs in the chart's pool",
                lambda: (len(store.list("GPU")) == 4 and store.list("GPUPool")) or None,
            )
            # Created through the emulator: the chart's webhook configuration sends it to the
            # controller over TLS, checked against the chart's caBundle.
            store.create(guide_pod("r9"))
            bound = wait_for(
                "the R9 pod to be bound",
                lambda: (p := store.get("Pod", "r9", "default"))["spec"].get("nodeName") and p,
                timeout_s=60,
            )
    assert bound["spec"]["nodeName"] == GPU_NODE
    assert bound["spec"]["initContainers"], "converted by the webhook"
