"""A workload pod's whole path in a cluster: the webhook converts it, the scheduler binds it,
its node's agent makes its regions, and the shim in its container holds it to its slice.

Stand-ins, as none of the real components can run here: the API-server emulator for
kube-apiserver, the kubelet stand-in (tests/kube/kubelet.py) for the kubelet and the NVIDIA
container runtime, mockcuda for each node's driver and NVML (one state file a node, 4 H100s),
and the GreptimeDB stand-in for GreptimeDB. The controller (webhook over TLS, scheduler,
reconcilers) and the node agents (`tensor-fusion agent`, one process a node) are the
project's own."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest

from tensorfusion.agent.spill import DEFAULT_SPILL_ROOT
from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    GPU_IDS,
    GPU_INDICES,
    NATIVE_GPU_RESOURCE,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.gpu_links import OWNER_LABEL
from tensorfusion.api.node import USED_BY_DEVICE_PLUGIN, USED_BY_TENSOR_FUSION
from tensorfusion.api.quantity import Quantity
from tensorfusion.metrics.point import Unsigned
from tensorfusion.store.kube import KubeStore
from tensorfusion.webhook.conversion import USED_BY_TAINT, USED_BY_VALUE
from tensorfusion.webhook.shim_injection import HOST_REGIONS_ROOT
from tests.controller.cluster import NAMESPACE, apply_crds, guide_pod, wait_for
from tests.kube.kubelet import KubeletStandIn, StandInNode
from tests.kube.node_agents import write_checkpoint
from tests.kube.runner import KubeApi
from tests.kube.webhook_configuration import register, served_webhook, webhook_configuration
from tests.mockcuda_build import MockCuda
from tests.unit.metrics.greptime_standin import Server, StandIn
from tests.unit.operator.reconciler_objects import GPU_LABEL, cluster

NODES = ("gpu-node-a", "gpu-node-b")
GPUS = 4
H100 = "NVIDIA H100 80GB HBM3"
MiB = 1 << 20
LIMIT = 256 * MiB
CHUNK = 16 * MiB
VRAM = "16Gi"

# The container's program: allocates CHUNK at a time on the driver until refused, says how
# far it got, then holds its memory until it is killed.
PROGRAM = r"""
import ctypes, sys, time
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p
cuda = ctypes.CDLL("libcuda.so.1")
dev, ctx = c_int(), c_void_p()
assert cuda.cuInit(0) == 0
assert cuda.cuDeviceGet(byref(dev), 0) == 0
assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0
chunk, total = int(sys.argv[1]), 0
while True:
    ptr = c_uint64()
    rc = cuda.cuMemAlloc_v2(byref(ptr), c_size_t(chunk))
    if rc != 0:
        break
    total += chunk
print(f"allocated={total} rc={rc}", flush=True)
time.sleep(3600)
"""


@dataclass
class Cluster:
    store: KubeStore
    kubelet: KubeletStandIn
    greptime: StandIn
    homes: dict[str, Path]
    """Each node's files: `shm` (its /run/tensor-fusion/shm), its agent's log, state and
    kubelet checkpoint."""
    api_url: str

    def regions(self, node: str) -> Path:
        return self.homes[node] / "shm"


def _agent(
    node: str, kubeconfig: Path, home: Path, mockcuda: MockCuda, greptime: StandIn
) -> subprocess.Popen[bytes]:
    """`tensor-fusion agent` for `node`, as its DaemonSet pod runs it, on the node's driver."""
    env = mockcuda.env(home / "mockcuda.state", devices=GPUS, memory=VRAM)
    env |= {"MOCKCUDA_NAME": H100, "NODE_NAME": node, **greptime.environ()}
    command = [
        sys.executable,
        "-c",
        "from tensorfusion.cli import main; raise SystemExit(main())",
        "agent",
        f"--kubeconfig={kubeconfig}",
        f"--regions-root={home / 'shm'}",
        f"--spill-root={home / 'spill'}",
        f"--state-dir={home / 'state'}",
        f"--kubelet-checkpoint={home / 'kubelet_internal_checkpoint'}",
        "--bind-address=127.0.0.1:0",
        "--interval=0.2",
    ]
    (home / "state").mkdir(parents=True)
    log = (home / "agent.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def running_cluster(
    kube_api: KubeApi,
    api_client: kubernetes.client.ApiClient,
    mockcuda: MockCuda,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    migration: bool = False,
) -> Iterator[Cluster]:
    """The controller with `-nvidia-operator-progressive-migration` when `migration`, and
    the webhook configuration the chart installs for it."""
    apply_crds(kube_api.kubeconfig)
    with ExitStack() as stack:
        greptime = stack.enter_context(Server(StandIn()))
        for name, value in greptime.environ().items():  # as the chart sets them
            monkeypatch.setenv(name, value)
        store = stack.enter_context(KubeStore(kube_api.kubeconfig))
        store.create(cluster())  # one default pool selecting the nodes labelled gpu=yes
        homes = {node: tmp_path / node for node in NODES}
        nodes = [
            StandInNode(
                node,
                {
                    HOST_REGIONS_ROOT: homes[node] / "shm",
                    str(DEFAULT_SPILL_ROOT): homes[node] / "spill",
                },
                mockcuda.env(homes[node] / "mockcuda.state", devices=GPUS, base={})
                | {"MOCKCUDA_NAME": H100},
                labels=GPU_LABEL,
            )
            for node in NODES
        ]
        kubelet = stack.enter_context(KubeletStandIn(kube_api.kubeconfig, nodes, tmp_path / "pods"))
        webhook = stack.enter_context(
            served_webhook(
                kube_api.kubeconfig,
                tmp_path,
                command_loops=True,
                nvidia_operator_progressive_migration=migration,
            )
        )
        configuration = webhook_configuration(
            webhook.url, webhook.ca_bundle, release_namespace=NAMESPACE, migration=migration
        )
        register(api_client, configuration)
        agents = [
            _agent(node, kube_api.kubeconfig, homes[node], mockcuda, greptime) for node in NODES
        ]
        stack.callback(_stop, agents)
        wait_for(
            "every node's GPUs to be registered in the pool",
            lambda: (
                len([g for g in store.list("GPU") if g.get("status", {}).get("phase") == "Running"])
                == GPUS * len(NODES)
                or None
            ),
        )
        yield Cluster(store, kubelet, greptime, homes, webhook.running.url)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def workload_pod(name: str) -> dict[str, Any]:
    """The guide's R9 pod with a VRAM limit of 256 MiB, as a Deployment's ReplicaSet makes
    it (no schedulerName: the webhook sets it), running PROGRAM."""
    pod = guide_pod(name)
    del pod["spec"]["schedulerName"]
    pod["metadata"]["annotations"] |= {VRAM_REQUEST: "256Mi", VRAM_LIMIT: "256Mi"}
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "train-7d9f8",
            "uid": "9b2f3c1e-0000-4000-8000-000000000001",
            "controller": True,
        }
    ]
    pod["spec"]["containers"][0]["command"] = ["python3", "-c", PROGRAM, str(CHUNK)]
    return pod


def _available(store: KubeStore) -> dict[str, Any] | None:
    """Each GPU's available TFLOPS and VRAM, once the controller has written them all with
    the pool's expansion into host memory: that needs the host's RAM, which the agent
    reports in its GPUNode's `nodeInfo` after the GPUs themselves, so until then a GPU's
    availability is its bare VRAM."""
    available = {
        gpu["metadata"]["name"]: gpu["status"].get("available") for gpu in store.list("GPU")
    }
    expanded = [
        value is not None and Quantity.parse(value["vram"]).value() > Quantity.parse(VRAM).value()
        for value in available.values()
    ]
    return available if len(available) == GPUS * len(NODES) and all(expanded) else None


def _worker_rows(greptime: StandIn, pod_name: str) -> list[Any]:
    return [
        point
        for point in list(greptime.points)
        if point.measurement == "tf_worker_usage" and point.tags.get("worker") == pod_name
    ]


@pytest.fixture
def start_cluster(
    kube_api: KubeApi,
    api_client: kubernetes.client.ApiClient,
    mockcuda: MockCuda,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., AbstractContextManager[Cluster]]:
    """`running_cluster` for this test; takes `migration=`."""
    return functools.partial(running_cluster, kube_api, api_client, mockcuda, tmp_path, monkeypatch)


@pytest.mark.timing  # the agents' and the scheduler's passes
def test_a_pods_whole_path(start_cluster: Callable[..., AbstractContextManager[Cluster]]) -> None:
    with start_cluster() as c:
        idle = wait_for("every GPU's availability", lambda: _available(c.store))
        c.store.create(workload_pod("train"))

        # Converted and bound, with its GPU's device index for the container runtime.
        bound = wait_for(
            "the pod to be bound",
            lambda: (p := c.store.get("Pod", "train", "default"))["spec"].get("nodeName") and p,
        )
        node = bound["spec"]["nodeName"]
        annotations = bound["metadata"]["annotations"]
        (gpu_id,) = annotations[GPU_IDS].split(",")
        index = c.store.get("GPU", gpu_id)["status"]["index"]
        assert annotations[GPU_INDICES] == str(index)
        assert bound["metadata"]["labels"][ENABLED_LABEL] == "true"

        # The agent made its region; the container allocates and is stopped at the limit.
        region_dir = c.regions(node) / "default" / "train"
        run = c.kubelet.run_of("default", "train")
        output = wait_for(
            "the program to report",
            lambda: c.kubelet.logs("default", "train", "test-container") or None,
        )
        assert re.fullmatch(rf"allocated={LIMIT} rc=2\n", output), output
        assert (region_dir / "device-0").resolve() == region_dir / f"{gpu_id}.shm"
        assert run.exit_codes == {"tensor-fusion-shim": 0}

        # Its usage reaches GreptimeDB and the management API.
        rows = wait_for(
            "tf_worker_usage rows at the limit",
            lambda: (
                [
                    row
                    for row in _worker_rows(c.greptime, "train")
                    if row.fields["memory_bytes"] == Unsigned(LIMIT)
                ]
                or None
            ),
        )
        assert rows[-1].tags["namespace"] == "default"
        # The leader's allocation metrics reach the same GreptimeDB, where its alert rules read.
        wait_for(
            "the leader's tf_node_metrics in GreptimeDB",
            lambda: (
                any(p.measurement == "tf_node_metrics" for p in list(c.greptime.points)) or None
            ),
        )
        with httpx.Client(base_url=c.api_url, timeout=30) as http:
            (view,) = http.get("/api/workers").json()["workers"]
        assert (view["name"], view["usage"]["vram"]) == ("train", LIMIT), view
        held = _available(c.store)
        assert held is not None
        assert held[gpu_id] != idle[gpu_id]
        assert {name: value for name, value in held.items() if name != gpu_id} == {
            name: value for name, value in idle.items() if name != gpu_id
        }

        # Deleting the pod kills the program, releases its GPU and removes its regions.
        c.store.delete("Pod", "train", "default")
        assert run.done.wait(30)
        wait_for("the regions to be removed", lambda: not region_dir.exists() or None)
        wait_for("the GPU to be released", lambda: _available(c.store) == idle or None)


def _node_marks(store: KubeStore, node: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The node's used-by label and used-by taints."""
    obj = store.get("Node", node)
    taints = [t for t in obj.get("spec", {}).get("taints") or [] if t["key"] == USED_BY_TAINT]
    return obj["metadata"].get("labels", {}).get(USED_BY_TAINT), taints


def _gpu_ids(store: KubeStore, node: str) -> list[str]:
    return [gpu["status"]["uuid"] for gpu in store.list("GPU", label_selector={OWNER_LABEL: node})]


def _used_by(store: KubeStore, node: str) -> set[str]:
    gpus = store.list("GPU", label_selector={OWNER_LABEL: node})
    return {gpu["status"]["usedBy"] for gpu in gpus}


def _bound_node(store: KubeStore, name: str) -> str:
    return wait_for(  # type: ignore[no-any-return]
        f"{name} to be bound",
        lambda: store.get("Pod", name, "default")["spec"].get("nodeName"),
    )


def _unschedulable(store: KubeStore, name: str) -> str | None:
    """The scheduler's message on a pod it could not place, once it has said so."""
    conditions = store.get("Pod", name, "default").get("status", {}).get("conditions") or []
    for condition in conditions:
        if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return str(condition.get("message", ""))
    return None


def native_pod(name: str, *, enabled: str | None = None) -> dict[str, Any]:
    """A pod holding a whole GPU through the NVIDIA device plugin."""
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "cuda",
                    "image": "nvidia/cuda",
                    "resources": {"limits": {NATIVE_GPU_RESOURCE: "1"}},
                }
            ]
        },
    }


def _schedulable_nodes(core_v1: kubernetes.client.CoreV1Api, pod: dict[str, Any]) -> set[str]:
    """The nodes a pod's required node affinity admits, read with the API server's label
    selector (the same semantics kube-scheduler gives `matchExpressions`), for the pod's
    single term of Exists / DoesNotExist expressions."""
    required = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    (term,) = required["nodeSelectorTerms"]
    operators = {"Exists": "{}", "DoesNotExist": "!{}"}
    selector = ",".join(operators[e["operator"]].format(e["key"]) for e in term["matchExpressions"])
    nodes = core_v1.list_node(label_selector=selector).items
    return {str(getattr(node.metadata, "name", None)) for node in nodes}


@pytest.mark.timing  # the agents', the scheduler's and the reconcilers' passes
def test_progressive_migration_both_ways_and_rollback_by_label(
    start_cluster: Callable[..., AbstractContextManager[Cluster]],
    core_v1: kubernetes.client.CoreV1Api,
) -> None:
    node_a, node_b = NODES
    with start_cluster(migration=True) as c:
        # The NVIDIA device plugin holds every GPU of node b (its kubelet's checkpoint): the
        # agent gives them to the plugin, so a worker pinned to node b waits, and another is
        # placed on node a.
        checkpoint = c.homes[node_b] / "kubelet_internal_checkpoint"
        write_checkpoint(checkpoint, _gpu_ids(c.store, node_b), held=_gpu_ids(c.store, node_b))
        wait_for(
            "node b's GPUs to go to the plugin",
            lambda: _used_by(c.store, node_b) == {USED_BY_DEVICE_PLUGIN} or None,
        )
        pinned = workload_pod("pinned")
        pinned["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node_b}
        c.store.create(pinned)
        wait_for(
            "the pinned worker to be found unschedulable", lambda: _unschedulable(c.store, "pinned")
        )
        c.store.create(workload_pod("train"))
        assert _bound_node(c.store, "train") == node_a
        assert not c.store.get("Pod", "pinned", "default")["spec"].get("nodeName")

        # Node a runs a TensorFusion worker: it is labelled and tainted, node b is not.
        wait_for(
            "node a's used-by marks",
            lambda: _node_marks(c.store, node_a)[0] == USED_BY_VALUE or None,
        )
        _, taints = _node_marks(c.store, node_a)
        assert taints == [
            {"key": USED_BY_TAINT, "value": USED_BY_VALUE, "effect": "PreferNoSchedule"}
        ]
        assert _node_marks(c.store, node_b) == (None, [])

        # A pod that keeps nvidia.com/gpu may only go where no worker runs: node b.
        c.store.create(native_pod("native"))
        native = c.store.get("Pod", "native", "default")
        assert _schedulable_nodes(core_v1, native) == {node_b}
        # Rolled back by its label (R7): admitted as it is, and kept off node a alike.
        c.store.create(native_pod("rolled-back", enabled="false"))
        rolled_back = c.store.get("Pod", "rolled-back", "default")
        assert rolled_back["spec"]["schedulerName"] == "default-scheduler"
        assert "initContainers" not in rolled_back["spec"]
        assert _schedulable_nodes(core_v1, rolled_back) == {node_b}

        # The plugin releases node b's GPUs: they come back to TensorFusion, and the pinned
        # worker is placed there.
        write_checkpoint(checkpoint, _gpu_ids(c.store, node_b), held=[])
        wait_for(
            "node b's GPUs to come back",
            lambda: _used_by(c.store, node_b) == {USED_BY_TENSOR_FUSION} or None,
        )
        assert _bound_node(c.store, "pinned") == node_b

        # Once node a's worker is gone, its marks go too.
        c.store.delete("Pod", "train", "default")
        wait_for("node a's marks to go", lambda: _node_marks(c.store, node_a) == (None, []) or None)
