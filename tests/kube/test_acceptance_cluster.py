"""Acceptance in the API-server emulator, which stands in for a real kube-apiserver: our CRDs
and the guide's R15 TensorFusionCluster applied with the real kubectl, a fleet of 20 nodes of
8 GPUs in the pool R15 defines, and the controller (reconcilers and scheduler, with the
guide's R8 scheduler configuration) over it. The reconcilers fill in the statuses; the
guide's R9 pod goes to the GPU that scores highest; 2,000 pods of mixed sizes are placed
exactly as the embedded scheduling loop places them on the same fleet."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    GPU_COUNT,
    GPU_IDS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.crd import crd_files
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION, OWNER_LABEL
from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.quantity import Quantity
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.operator.reconcilers.runner import run_reconcilers
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import gpu_name
from tensorfusion.scheduler.loop import WATCHED_KINDS, SchedulingLoop
from tensorfusion.scheduler.profile import load_scheduler_config
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.kube import KubeStore
from tensorfusion.store.local import LocalStore
from tests.controller.cluster import (
    GUIDE,
    RunningController,
    add_pool_fleet,
    guide_pod,
    kubectl,
    running_controller,
    wait_for,
)
from tests.kube.runner import KubeApi
from tests.kube_tools import KubeTools

pytestmark = pytest.mark.timing  # waits for the controller's reconcilers and scheduler

CLUSTER_FILE = GUIDE / "r15-managed-node-pool.yaml"
SCHEDULER_CONFIG = GUIDE / "r08-scheduler-config.yaml"
NODES = 20
GPUS_PER_NODE = 8
PODS = 2_000
BUSY_POD, R9_POD = "busy", "guide-r9"
"""Named to sort before the mixed pods, as they are created before them: name order (a real
API server's list order) stays creation order (the emulator's)."""
BUSY_NODE, BUSY_GPU = "node-00013", "node-00013-gpu-5"
"""Where a running pod sits before the R9 pod comes: not the first node nor its first GPU, so
that only the score, never the tie-break by index, sends the R9 pod there."""
POOL_COUNTS = ("phase", "cluster", "totalNodes", "readyNodes", "notReadyNodes", "totalGPUs")
CLUSTER_COUNTS = (
    "phase",
    "totalPools",
    "totalNodes",
    "totalGPUs",
    "readyGPUPools",
    "notReadyGPUPools",
)
GIB = 1 << 30


@dataclass(frozen=True)
class Cluster:
    kube_api: KubeApi
    tools: KubeTools
    store: KubeStore
    name: str
    """The TensorFusionCluster's."""
    pool: str
    """The GPUPool the reconcilers make of its only pool."""
    fleet: Fleet


@dataclass(frozen=True)
class Capacity:
    """Milli-TFLOPS and bytes: physical, and virtual (what limits may add up to, by the
    pool's oversubscription)."""

    tflops: int
    vram: int
    virtual_tflops: int
    virtual_vram: int

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            self.tflops + other.tflops,
            self.vram + other.vram,
            self.virtual_tflops + other.virtual_tflops,
            self.virtual_vram + other.virtual_vram,
        )

    def status(self) -> dict[str, int]:
        """As a status holds them, with nothing placed: all the virtual capacity is
        available (the reconcilers count limits against it)."""
        return {
            "totalTFlops": self.tflops,
            "totalVRAM": self.vram,
            "virtualTFlops": self.virtual_tflops,
            "virtualVRAM": self.virtual_vram,
            "availableTFlops": self.virtual_tflops,
            "availableVRAM": self.virtual_vram,
        }


def milli(text: str) -> int:
    return Quantity.parse(text).milli_value()


def whole(text: str) -> int:
    return Quantity.parse(text).value()


def read_capacity(status: Mapping[str, Any]) -> dict[str, int]:
    """The capacity fields of a GPUNode's, pool's or cluster's status, as numbers."""
    return {
        field: (milli if "TFlops" in field else whole)(status[field])
        for field in Capacity(0, 0, 0, 0).status()
    }


def gpu_capacity(fleet: Fleet) -> dict[str, Capacity]:
    """Each GPU's capacity, worked out from what the fleet reports (the GPU's own capacity,
    its host's RAM and disk shared among the host's GPUs) by the default oversubscription,
    which the R15 pool keeps: limits up to 500% of the TFLOPS, VRAM expanded by 50% into
    host memory and 70% into disk, each at most the GPU's share of the host."""
    over = Oversubscription()
    hosts = {node["metadata"]["name"]: node["status"]["nodeInfo"] for node in fleet.gpu_nodes}
    capacity = {}
    for gpu in fleet.gpus:
        host = hosts[gpu["metadata"]["labels"][OWNER_LABEL]]
        tflops, vram = (
            milli(gpu["status"]["capacity"]["tflops"]),
            whole(gpu["status"]["capacity"]["vram"]),
        )
        ram, disk = (
            whole(host["ramSize"]) // host["gpuCount"],
            whole(host["dataDiskSize"]) // host["gpuCount"],
        )
        capacity[gpu["metadata"]["name"]] = Capacity(
            tflops,
            vram,
            tflops * over.tflops_oversell_ratio // 100,
            vram
            + min(vram * over.vram_expand_to_host_mem // 100, ram)
            + min(vram * over.vram_expand_to_host_disk // 100, disk),
        )
    return capacity


def total(capacities: list[Capacity]) -> Capacity:
    return sum(capacities, Capacity(0, 0, 0, 0))


@pytest.fixture(scope="module")
def cluster(
    kube_api_module: KubeApi, kube_tools: KubeTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The CRDs and R15 applied with kubectl, and the fleet registered in R15's pool."""
    config = kube_api_module.kubeconfig
    crds = tmp_path_factory.mktemp("crds")
    for name, text in crd_files().items():
        (crds / name).write_text(text)
    kubectl(kube_tools, config, "apply", "-f", str(crds))
    kubectl(kube_tools, config, "wait", "--for=condition=established", "crd", "--all")
    kubectl(kube_tools, config, "apply", "-f", str(CLUSTER_FILE))
    spec = yaml.safe_load(CLUSTER_FILE.read_text())
    name, (pool,) = spec["metadata"]["name"], spec["spec"]["gpuPools"]
    pool_name = f"{name}-{pool['name']}"
    with KubeStore(config) as store:
        fleet = add_pool_fleet(store, pool_name, NODES, GPUS_PER_NODE)
        yield Cluster(kube_api_module, kube_tools, store, name, pool_name, fleet)


def controller(
    cluster: Cluster, state_dir: Path, *, reconcile: bool = True
) -> AbstractContextManager[RunningController]:
    """The controller with R8's scheduler configuration, and its reconcilers unless not to
    `reconcile`."""
    return running_controller(
        cluster.kube_api.kubeconfig,
        state_dir,
        loops=(run_reconcilers,) if reconcile else (),
        scheduler_config=SCHEDULER_CONFIG,
    )


def allocated(running: RunningController) -> int:
    """How many pods the scheduler has placed; read between its passes, so that every pod it
    counts is bound in the store."""
    return len(running.controller.allocation()["allocations"])


def wait_ready(running: RunningController) -> None:
    with running.http() as http:
        wait_for("the scheduler to be ready", lambda: http.get("/readyz").status_code == 200)


@pytest.fixture(scope="module")
def reconciled(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The cluster once the controller's reconcilers have made its pool and summed it up:
    the cluster's status counts every GPU of the fleet."""
    expected = total(list(gpu_capacity(cluster.fleet).values())).status()
    store = cluster.store

    def summed() -> bool:
        status = store.get("TensorFusionCluster", cluster.name).get("status") or {}
        return status.get("phase") == "Running" and read_capacity(status) == expected

    with controller(cluster, tmp_path_factory.mktemp("state")):
        wait_for("the cluster's status to sum the fleet", summed)
    return cluster


def test_the_reconcilers_fill_in_every_status(reconciled: Cluster) -> None:
    store, fleet = reconciled.store, reconciled.fleet
    per_gpu = gpu_capacity(fleet)
    the_cluster = store.get("TensorFusionCluster", reconciled.name)
    pool = store.get("GPUPool", reconciled.pool)
    (owner,) = pool["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TensorFusionCluster",
        reconciled.name,
        the_cluster["metadata"]["uid"],
    )
    assert pool["metadata"]["annotations"][DEFAULT_POOL_ANNOTATION] == "true"
    assert pool["spec"] == the_cluster["spec"]["gpuPools"][0]["specTemplate"]

    for gpu in fleet.gpus:
        name = gpu["metadata"]["name"]
        available = store.get("GPU", name)["status"]["available"]
        assert (milli(available["tflops"]), whole(available["vram"])) == (
            per_gpu[name].virtual_tflops,
            per_gpu[name].virtual_vram,
        ), name
    for node in fleet.gpu_nodes:
        name = node["metadata"]["name"]
        on_node = [per_gpu[gpu_name(name, index)] for index in range(GPUS_PER_NODE)]
        status = store.get("GPUNode", name)["status"]
        assert read_capacity(status) == total(on_node).status(), name
        assert (status["phase"], status["totalGPUs"], status["managedGPUs"]) == (
            "Running",
            GPUS_PER_NODE,
            GPUS_PER_NODE,
        )
        assert status["conditions"] == []

    gpus = NODES * GPUS_PER_NODE
    fleet_total = total(list(per_gpu.values()))
    # Spelled out once, so that a slip in gpu_capacity shows: an H100 has 989 TFLOPS and
    # 80 GiB, which limits may stretch to 4,945 TFLOPS and 80 + 40 + 56 GiB.
    assert fleet_total == Capacity(
        gpus * 989_000, gpus * 80 * GIB, gpus * 4_945_000, gpus * 176 * GIB
    )
    status = pool["status"]
    assert read_capacity(status) == fleet_total.status()
    assert {key: status[key] for key in POOL_COUNTS} == {
        "phase": "Running",
        "cluster": reconciled.name,
        "totalNodes": NODES,
        "readyNodes": NODES,
        "notReadyNodes": 0,
        "totalGPUs": gpus,
    }
    status = the_cluster["status"]
    assert read_capacity(status) == fleet_total.status()
    assert {key: status[key] for key in CLUSTER_COUNTS} == {
        "phase": "Running",
        "totalPools": 1,
        "totalNodes": NODES,
        "totalGPUs": gpus,
        "readyGPUPools": [reconciled.pool],
        "notReadyGPUPools": [],
    }


def workload(
    name: str, tflops: tuple[int, int], vram_gib: tuple[int, int], gpus: int = 1
) -> dict[str, Any]:
    """A pod of our scheduler with TFLOPS and VRAM (request, limit) per GPU."""
    annotations = {
        TFLOPS_REQUEST: str(tflops[0]),
        TFLOPS_LIMIT: str(tflops[1]),
        VRAM_REQUEST: f"{vram_gib[0]}Gi",
        VRAM_LIMIT: f"{vram_gib[1]}Gi",
    }
    if gpus > 1:
        annotations[GPU_COUNT] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {ENABLED_LABEL: "true"},
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": SCHEDULER_NAME,
            "containers": [{"name": "main", "image": "nvidia/cuda"}],
        },
    }


def test_the_guides_pod_goes_to_the_gpu_that_scores_highest(
    reconciled: Cluster, tmp_path: Path
) -> None:
    store = reconciled.store
    # A pod already running there, bound by hand: compact-first placement now scores that
    # GPU (and so its node) above every empty one.
    busy = workload(BUSY_POD, (200, 200), (20, 20))
    busy["metadata"]["annotations"][GPU_IDS] = BUSY_GPU
    busy["spec"]["nodeName"] = BUSY_NODE
    store.create(busy)
    pod = guide_pod(R9_POD)
    with controller(reconciled, tmp_path) as running:
        wait_ready(running)
        answer = running.http().post("/api/simulate-schedule", json=pod)
        assert answer.status_code == 200, answer.text
        simulated = answer.json()
        top = simulated["topNodes"]
        assert simulated["schedulable"] is True
        assert (simulated["node"], simulated["gpus"]) == (BUSY_NODE, [BUSY_GPU])
        assert top[0]["node"] == BUSY_NODE
        assert all(other["total"] < top[0]["total"] for other in top[1:])

        store.create(pod)
        bound = wait_for(
            "the R9 pod to be bound",
            lambda: store.get("Pod", R9_POD, "default")["spec"].get("nodeName"),
        )
        assert bound == BUSY_NODE
        shown = yaml.safe_load(
            kubectl(
                reconciled.tools,
                reconciled.kube_api.kubeconfig,
                "get",
                "pod",
                R9_POD,
                "-o",
                "yaml",
            )
        )
        assert shown["metadata"]["annotations"][GPU_IDS] == BUSY_GPU
        assert shown["spec"]["nodeName"] == BUSY_NODE

        # The reconcilers take both pods' limits off the GPU's available capacity.
        capacity = gpu_capacity(reconciled.fleet)[BUSY_GPU]
        left = {
            "tflops": capacity.virtual_tflops - (200 + 100) * 1000,
            "vram": capacity.virtual_vram - (20 + 16) * GIB,
        }

        def available() -> bool:
            status = store.get("GPU", BUSY_GPU)["status"]["available"]
            return {"tflops": milli(status["tflops"]), "vram": whole(status["vram"])} == left

        wait_for("the GPU's available capacity to count both pods", available)


def mixed_pods() -> list[dict[str, Any]]:
    """PODS pods of mixed sizes, the same every run, which all fit at once: some nodes run
    out of VRAM, others reach their 110 pods. Zero-padded names keep name order creation
    order."""
    rng = random.Random(2_000)
    pods = []
    for number in range(PODS):
        tflops = rng.choice((10, 25, 50, 100))
        vram = rng.choice((2, 4, 6, 8))
        burst = rng.choice((1, 1, 2, 3))
        gpus = 2 if rng.random() < 0.2 else 1
        pods.append(
            workload(
                f"mix-{number:04d}",
                (tflops, tflops * burst),
                (vram, vram * min(burst, 2)),
                gpus,
            )
        )
    return pods


Placement = dict[str, tuple[str, str]]
"""Pod name -> (node, gpu-ids)."""


def placement(store: ClusterStore) -> Placement | None:
    """Where every pod is, in the order the store lists them; None while one is unbound."""
    pods = store.list("Pod", "default")
    if not all(pod["spec"].get("nodeName") for pod in pods):
        return None
    return {
        pod["metadata"]["name"]: (pod["spec"]["nodeName"], pod["metadata"]["annotations"][GPU_IDS])
        for pod in pods
    }


def embedded_placement(objects: list[dict[str, Any]]) -> Placement:
    """What the embedded scheduling loop does with `objects`, in a store of its own."""
    with LocalStore(":memory:") as local:
        local.create_many(objects)
        loop = SchedulingLoop(local, load_scheduler_config(SCHEDULER_CONFIG))
        loop.start()
        # One pass places every pod: none waits for a retry, whose timing would differ
        # between the two schedulers.
        assert loop.run_once().unschedulable == 0
        assert loop.pending() == {}
        placed = placement(local)
        assert placed is not None
        return placed


def test_mixed_pods_are_placed_as_the_embedded_loop_places_them(
    reconciled: Cluster, tmp_path: Path
) -> None:
    store = reconciled.store
    store.create_many(mixed_pods())
    # The same objects, as the API server holds them, for the embedded loop (a create
    # takes no resourceVersion).
    snapshot = [
        {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}
        for kind in WATCHED_KINDS
        for obj in store.list(kind)
    ]
    expected = embedded_placement(snapshot)

    # The scheduler alone: the reconcilers' status writes (a GPUNode's on every bind) would
    # triple the time the binds take here, and placement reads none of them.
    with controller(reconciled, tmp_path, reconcile=False) as running:
        wait_ready(running)
        wait_for("every pod to be allocated", lambda: allocated(running) == len(expected))
    placed = placement(store)
    assert placed is not None, "a pod the scheduler allocated is not bound"

    mixed = [name for name in placed if name.startswith("mix-")]
    assert len(mixed) == PODS
    # Both stores list the pods in one order (name order), so both loops queue them so.
    assert list(placed) == list(expected) == sorted(placed)
    assert placed == expected
    nodes = {node for node, _ in placed.values()}
    gpu_ids = [gpu for _, gpus in placed.values() for gpu in gpus.split(",")]
    assert len(nodes) >= 10
    assert len(set(gpu_ids)) < len(gpu_ids) // 4  # GPUs are shared
    assert sum("," in gpus for _, gpus in placed.values()) >= PODS // 10
