"""Acceptance, end to end in the API-server emulator: the controller survives losing its
leader, its own restart and the API server's loss of watch history without binding a pod
twice, giving a GPU beyond what it holds, leaking an allocation or missing a pod.

- failover: two replicas of `tensor-fusion controller` as processes; the leader is killed
  (SIGKILL) while 1,000 pods are being scheduled, and the other takes the lease over within
  15 s and binds the rest;
- restart: a controller started again on the same cluster shows the allocation as it was,
  binds nothing again, forgets the allocation of a pod deleted while it was down, and binds
  a pod that a killed leader left half bound (gpu-ids written, no binding);
- 410 Gone: the API server ends every watch and forgets its change log while pods are being
  created; the scheduler lists again and binds every pod.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple, Self

import httpx
import pytest

from tensorfusion.api.annotations import (
    GPU_COUNT,
    GPU_IDS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.gpu_links import OWNER_LABEL
from tensorfusion.api.quantity import Quantity
from tensorfusion.controller.control_plane import LEASE_NAME
from tensorfusion.controller.events import FAILED_SCHEDULING
from tensorfusion.errors import NotFoundError
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import (
    NAMESPACE,
    WAIT_S,
    RunningController,
    add_fleet,
    apply_crds,
    guide_pod,
    running_controller,
    wait_for,
)
from tests.controller.process import ControllerProcess
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing  # leases, processes and the scheduler's passes

PODS_PATH = "/api/v1/namespaces/default/pods"
FAILOVER_LIMIT_S = 15.0
# Per GPU (TFLOPS, VRAM) and how many GPUs, weighted: on average 6.6 Gi and 82.5 TFLOPS a
# pod, about half of what the fleets below hold, so that every pod fits however the scheduler
# packs them and a pod left pending is the scheduler's fault, not the fleet's.
SHAPES = (
    ("25", "2Gi", 1),
    ("50", "4Gi", 1),
    ("100", "8Gi", 1),
    ("200", "16Gi", 1),
    ("100", "8Gi", 2),
)
WEIGHTS = (3, 3, 2, 1, 1)

Pod = dict[str, Any]
ZERO = Quantity.from_int(0)


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig, lease_namespace=NAMESPACE) as store:
        yield store


def workload_pods(prefix: str, count: int, seed: int = 0) -> list[Pod]:
    """The guide's pod in mixed sizes (limits equal to requests), the same for a seed."""
    pods = []
    shapes = random.Random(seed).choices(SHAPES, WEIGHTS, k=count)
    for number, (tflops, vram, gpus) in enumerate(shapes):
        pod = guide_pod(f"{prefix}-{number:04d}")
        annotations = pod["metadata"]["annotations"]
        annotations.update(
            {TFLOPS_REQUEST: tflops, TFLOPS_LIMIT: tflops, VRAM_REQUEST: vram, VRAM_LIMIT: vram}
        )
        if gpus > 1:
            annotations[GPU_COUNT] = str(gpus)
        pods.append(pod)
    return pods


def pods_of(store: KubeStore) -> list[Pod]:
    return store.list("Pod", namespace="default")


def bound_pods(store: KubeStore) -> int:
    return sum(1 for pod in pods_of(store) if pod["spec"].get("nodeName"))


def wait_all_bound(
    store: KubeStore, total: int, bound: Callable[[], int], timeout_s: float = WAIT_S
) -> list[Pod]:
    """The pods, once `bound()` counts `total` bound; else AssertionError naming some of
    those left, with the GPUs they were given (if a scheduler got that far) and why they
    wait."""
    try:
        wait_for(f"{total} pods to be bound", lambda: bound() >= total, timeout_s)
    except AssertionError:
        left = {
            pod["metadata"]["name"]: (
                pod["metadata"].get("annotations", {}).get(GPU_IDS),
                pod.get("status", {}).get("conditions"),
            )
            for pod in pods_of(store)
            if not pod["spec"].get("nodeName")
        }
        sample = dict(list(left.items())[:5])
        raise AssertionError(f"{len(left)} of {total} pods are not bound, e.g. {sample}") from None
    return pods_of(store)


def overcommitted(pods: Sequence[Pod], gpus: Sequence[Pod]) -> list[str]:
    """What is wrong with the bound pods' GPUs: a pod given other than the number of GPUs it
    asked for, or GPUs of another node, or a GPU whose pods' requests (per GPU, read as the
    scheduler reads them) add up to more than the GPU holds. Limits equal requests here, so
    the pool's oversubscription, which lets only limits exceed the GPU, is never the tighter
    bound."""
    owners = {gpu["metadata"]["name"]: gpu["metadata"]["labels"][OWNER_LABEL] for gpu in gpus}
    tflops: dict[str, Quantity] = {}
    vram: dict[str, int] = {}
    problems = []
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if not node:
            continue
        name = pod["metadata"]["name"]
        workload = PodInfo.from_dict(pod).workload
        assert workload is not None, name
        assert workload.tflops_request is not None, name
        assert workload.vram_request is not None, name
        if len(workload.gpu_ids) != workload.gpu_count:
            problems.append(f"{name} asked for {workload.gpu_count} GPUs, got {workload.gpu_ids}")
        for gpu_name in workload.gpu_ids:
            if owners.get(gpu_name) != node:
                problems.append(f"{name} on {node} got {gpu_name} of {owners.get(gpu_name)}")
            tflops[gpu_name] = tflops.get(gpu_name, ZERO) + workload.tflops_request
            vram[gpu_name] = vram.get(gpu_name, 0) + workload.vram_request
    for gpu in gpus:
        gpu_name, capacity = gpu["metadata"]["name"], gpu["status"]["capacity"]
        if tflops.get(gpu_name, ZERO) > Quantity.parse(capacity["tflops"]):
            problems.append(
                f"{gpu_name}: {tflops[gpu_name]} TFLOPS requested of {capacity['tflops']}"
            )
        if vram.get(gpu_name, 0) > Quantity.parse(capacity["vram"]).to_bytes():
            problems.append(
                f"{gpu_name}: {vram[gpu_name]} B of VRAM requested of {capacity['vram']}"
            )
    return problems


def lease_holder(store: KubeStore) -> str | None:
    try:
        lease = store.get("Lease", LEASE_NAME, NAMESPACE)
    except NotFoundError:
        return None
    holder: str | None = lease["spec"].get("holderIdentity")
    return holder


class Binding(NamedTuple):
    node: str
    gpus: str | None


class BindingLog:
    """Follows the pods on a watch of its own and notes each pod's binding (node and
    gpu-ids) when first seen bound, and every later change to it: a pod bound twice."""

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=30)
        listed = self._client.get(PODS_PATH).raise_for_status().json()
        self.version = int(listed["metadata"]["resourceVersion"])
        """The newest version the watch has reached (bookmarks included)."""
        self.first: dict[str, Binding] = {}
        self.rebound: list[str] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binding-log", daemon=True)

    def bound(self) -> int:
        with self._lock:
            return len(self.first)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._follow()
        except BaseException as error:  # raised again when the block ends
            self._error = error

    def _follow(self) -> None:
        # Bookmarks (every second) keep the version current and wake the loop to stop.
        params = {
            "watch": "true",
            "resourceVersion": str(self.version),
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "10",
        }
        with self._client.stream("GET", PODS_PATH, params=params) as stream:
            for line in stream.iter_lines():
                if line:
                    self._see(json.loads(line))
                if self._stop.is_set():
                    return

    def _see(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        if event["type"] == "ERROR":
            raise AssertionError(f"the pods' watch failed: {pod}")
        with self._lock:
            self.version = max(self.version, int(pod["metadata"]["resourceVersion"]))
            node = (pod.get("spec") or {}).get("nodeName")
            if event["type"] == "BOOKMARK" or not node:
                return
            name = pod["metadata"]["name"]
            binding = Binding(node, pod["metadata"].get("annotations", {}).get(GPU_IDS))
            first = self.first.setdefault(name, binding)
            if binding != first:
                self.rebound.append(f"{name}: {first} then {binding}")

    def caught_up(self, version: int) -> bool:
        with self._lock:
            return self.version >= version

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()
        if self._error is not None and exc_info[0] is None:
            raise self._error


class PodWriter(threading.Thread):
    """Creates `pods` in order, from a thread and a client of its own."""

    def __init__(self, kubeconfig: Path, pods: Sequence[Pod]) -> None:
        super().__init__(name="pod-writer", daemon=True)
        self.kubeconfig, self.pods = kubeconfig, pods
        self.created = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with KubeStore(self.kubeconfig) as store:
                for pod in self.pods:
                    store.create(pod)
                    self.created += 1
        except BaseException as error:  # raised again by `finish`
            self.error = error

    def finish(self) -> None:
        self.join(timeout=120)
        assert not self.is_alive(), "the pods are still being created"
        if self.error is not None:
            raise self.error


def replica(kube_api: KubeApi, state_dir: Path) -> ControllerProcess:
    """A replica of the controller, as the chart runs it (with leader election)."""
    return ControllerProcess(
        f"-kubeconfig={kube_api.kubeconfig}",
        f"-namespace={NAMESPACE}",
        "-leader-elect",
        "--api-bind-address=127.0.0.1:0",
        "--health-probe-bind-address=127.0.0.1:0",
        f"-state-dir={state_dir}",
    )


def test_the_standby_takes_over_from_a_killed_leader_within_15_s_and_binds_every_pod_once(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    pods, kill_after = workload_pods("load", 1000), 200
    add_fleet(store, nodes=20, gpus_per_node=8)
    with ExitStack() as stack:
        replicas = [stack.enter_context(replica(kube_api, tmp_path / name)) for name in ("a", "b")]
        by_holder = {process.wait_announced().holder: process for process in replicas}
        leader_holder = wait_for(
            "a replica to lead",
            lambda: holder if (holder := lease_holder(store)) in by_holder else None,
        )
        (standby_holder,) = set(by_holder) - {leader_holder}
        leader, standby = by_holder[leader_holder], by_holder[standby_holder]
        bindings = stack.enter_context(BindingLog(kube_api.url))
        writer = PodWriter(kube_api.kubeconfig, pods)
        writer.start()
        wait_for(f"{kill_after} pods to be bound", lambda: bindings.bound() >= kill_after)

        leader.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            "the standby to take the lease over",
            lambda: lease_holder(store) == standby_holder,
            timeout_s=FAILOVER_LIMIT_S + 30,
        )
        failover_s = time.monotonic() - killed_at
        print(f"failover: {failover_s:.2f} s")
        assert leader.stop() == -signal.SIGKILL
        assert failover_s <= FAILOVER_LIMIT_S, f"failover took {failover_s:.2f} s"

        writer.finish()
        wait_all_bound(store, len(pods), bindings.bound)
        listed, version = store.list_with_version("Pod", "default")
        wait_for("the binding log to catch up", lambda: bindings.caught_up(version))
        standby_api = standby.wait_announced().api  # announced long since
        allocation = httpx.get(f"{standby_api}/api/allocation", timeout=30)
    assert bindings.rebound == []
    assert len(listed) == len(pods)
    assert overcommitted(listed, store.list("GPU")) == []
    # The new leader's allocation is the pods' own: every pod, on the GPUs it was bound to.
    allocated = {a["name"]: ",".join(a["gpus"]) for a in allocation.json()["allocations"].values()}
    assert allocated == {name: binding.gpus for name, binding in bindings.first.items()}


def ready(running: RunningController) -> None:
    with running.http() as http:
        wait_for("the scheduler to be ready", lambda: http.get("/readyz").status_code == 200)


def allocation_of(running: RunningController) -> dict[str, Any]:
    with running.http() as http:
        answer: dict[str, Any] = http.get("/api/allocation").raise_for_status().json()
    return answer


def requested_figures(allocation: dict[str, Any]) -> dict[str, tuple[Quantity, Quantity]]:
    """The GPUs whose requests, as their figures show them, differ from what their workers'
    allocations add up to (with the figures shown): none when no allocation has leaked."""
    shown, summed = {}, {}
    for gpu in allocation["gpus"]:
        requested = gpu["requested"]
        shown[gpu["name"]] = (
            Quantity.parse(requested["tflops"]),
            Quantity.parse(requested["vram"]),
        )
    for gpu, workers in allocation["gpuWorkers"].items():
        tflops = sum((Quantity.parse(w["requests"]["tflops"]) for w in workers), ZERO)
        vram = sum((Quantity.parse(w["requests"]["vram"]) for w in workers), ZERO)
        summed[gpu] = (tflops, vram)
    return {
        gpu: figures for gpu, figures in shown.items() if figures != summed.get(gpu, (ZERO, ZERO))
    }


def allocation_once_bound(
    kube_api: KubeApi, store: KubeStore, pods: list[dict[str, Any]], state_dir: Path
) -> dict[str, Any]:
    """Run a controller until it has bound `pods`, and return its `/api/allocation`."""
    with running_controller(kube_api.kubeconfig, state_dir) as running:
        ready(running)
        store.create_many(pods)
        wait_all_bound(store, len(pods), lambda: bound_pods(store))
        return allocation_of(running)


def test_a_restarted_controller_takes_the_allocation_up_as_it_was_and_binds_nothing_again(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    add_fleet(store, nodes=5, gpus_per_node=8)
    pods = workload_pods("kept", 200)
    before = allocation_once_bound(kube_api, store, pods, tmp_path / "first")
    versions = {
        pod["metadata"]["name"]: pod["metadata"]["resourceVersion"] for pod in pods_of(store)
    }
    with running_controller(kube_api.kubeconfig, tmp_path / "second") as second:
        ready(second)
        assert allocation_of(second) == before
        # Once this one is bound, the scheduler has made a pass over the restored state.
        store.create(guide_pod("probe"))
        wait_for(
            "the probe to be bound",
            lambda: store.get("Pod", "probe", "default")["spec"].get("nodeName"),
        )
    after = {pod["metadata"]["name"]: pod["metadata"]["resourceVersion"] for pod in pods_of(store)}
    del after["probe"]
    assert after == versions
    events = [e for e in store.list("Event", "default") if e.get("reason") == FAILED_SCHEDULING]
    assert events == []


def test_the_allocation_of_a_pod_deleted_while_the_controller_is_down_is_gone_after_a_restart(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    add_fleet(store, nodes=1, gpus_per_node=2)
    before = allocation_once_bound(kube_api, store, workload_pods("gone", 6), tmp_path / "first")
    deleted = store.delete("Pod", "gone-0000", "default")
    with running_controller(kube_api.kubeconfig, tmp_path / "second") as second:
        ready(second)
        after = allocation_of(second)
    uid = deleted["metadata"]["uid"]
    assert uid in before["allocations"]
    assert after["allocations"] == {k: v for k, v in before["allocations"].items() if k != uid}
    assert requested_figures(before) == {}
    assert requested_figures(after) == {}


def test_a_pod_a_killed_leader_left_half_bound_is_bound_by_the_next_one_and_held_once(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    # What a leader killed between its PreBind patch and the binding leaves: a pending pod
    # whose gpu-ids name the GPU it had chosen. Its 600 TFLOPS fit that GPU only once, so
    # the next leader cannot pick it again on top of its own restored share.
    pod = guide_pod("half-bound")
    annotations = pod["metadata"]["annotations"]
    annotations.update({TFLOPS_REQUEST: "600", TFLOPS_LIMIT: "600", GPU_IDS: "node-00000-gpu-0"})
    add_fleet(store, nodes=1, gpus_per_node=2)
    store.create(pod)
    with running_controller(kube_api.kubeconfig, tmp_path) as running:
        ready(running)
        pods = wait_all_bound(store, 1, lambda: bound_pods(store), timeout_s=20)
        allocation = allocation_of(running)
    assert overcommitted(pods, store.list("GPU")) == []
    allocated = {a["name"]: ",".join(a["gpus"]) for a in allocation["allocations"].values()}
    assert allocated == {"half-bound": pods[0]["metadata"]["annotations"][GPU_IDS]}
    assert requested_figures(allocation) == {}


def test_after_the_api_server_loses_its_watch_history_every_pod_is_bound(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    add_fleet(store, nodes=5, gpus_per_node=8)
    before = workload_pods("before", 50, seed=1)
    during = workload_pods("during", 100, seed=2)
    after = workload_pods("after", 50, seed=3)
    with running_controller(kube_api.kubeconfig, tmp_path) as running:
        ready(running)
        store.create_many(before)
        writer = PodWriter(kube_api.kubeconfig, during)
        writer.start()
        wait_for("pods to be being created", lambda: writer.created >= 30)
        kube_api.drop_watches(compact=True)
        writer.finish()
        store.create_many(after)
        total = len(before) + len(during) + len(after)
        pods = wait_all_bound(store, total, lambda: bound_pods(store))
    assert kube_api.expired_reads() > 0, "no watch was resumed into 410 Gone"
    assert overcommitted(pods, store.list("GPU")) == []
