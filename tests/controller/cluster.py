"""A cluster in the API-server emulator for the controller's tests: our CRDs, a generated
fleet, and the controller started in this process with its API on a free port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tensorfusion.agent.discovery import register
from tensorfusion.controller.control_plane import (
    LEASE_DURATION_S,
    LEASE_RENEW_S,
    Controller,
    LeaderLoop,
)
from tensorfusion.controller.flags import ControllerFlags
from tensorfusion.operator.leader_loops import leader_loops
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.runner import RunningServer, start_in_thread
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.kube import KubeStore
from tensorfusion.webhook.replica_slots import ReplicaSlots
from tests.crd_bodies import crd_bodies
from tests.kube_tools import KubeTools, run_tool

T = TypeVar("T")
NAMESPACE = "tensor-fusion-sys"
GUIDE = Path(__file__).parents[1] / "fixtures" / "guide"
WAIT_S = 60.0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = WAIT_S) -> T:
    """`probe()`'s first answer that is not None (or False); AssertionError naming `what`
    when none comes in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = probe()
        if answer is not None and answer is not False:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def apply_crds(kubeconfig: Path) -> None:
    client = kube_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        extensions = kube_client.ApiextensionsV1Api(client)
        for body in crd_bodies():
            extensions.create_custom_resource_definition(body=body)
    finally:
        client.close()


def add_fleet(store: KubeStore, nodes: int, gpus_per_node: int) -> None:
    """Node, GPUNode, GPU and GPUPool objects of a generated H100 fleet, without pods."""
    fleet = generate_fleet(nodes, gpus_per_node, "H100")
    register(store, [*fleet.pools, *fleet.nodes, *fleet.gpu_nodes, *fleet.gpus])


@contextmanager
def fleet_store(kubeconfig: Path, nodes: int, gpus_per_node: int) -> Iterator[KubeStore]:
    """A KubeStore, open until the end, on a cluster with our CRDs and a generated fleet."""
    apply_crds(kubeconfig)
    with KubeStore(kubeconfig) as store:
        add_fleet(store, nodes, gpus_per_node)
        yield store


def add_pool_fleet(store: KubeStore, pool: str, nodes: int, gpus_per_node: int) -> Fleet:
    """Node, GPUNode and GPU objects of a generated H100 fleet in `pool`, as node agents
    register hosts of a pool that another object defines: no GPUPool, and none of the status
    the reconcilers write (capacity, availability, phase) but the hosts' `nodeInfo`."""
    fleet = generate_fleet(nodes, gpus_per_node, "H100", pool=pool)
    for gpu_node in fleet.gpu_nodes:
        gpu_node["status"] = {"nodeInfo": gpu_node["status"]["nodeInfo"]}
    for gpu in fleet.gpus:
        del gpu["status"]["available"]
    register(store, [*fleet.nodes, *fleet.gpu_nodes, *fleet.gpus])
    return fleet


def kubectl(tools: KubeTools, kubeconfig: Path, *args: str) -> str:
    """The real kubectl's output against `kubeconfig` (see `run_tool`). Its discovery cache
    sits beside the kubeconfig, so that no run reads another's."""
    cache = str(kubeconfig.parent / "kubectl-cache")
    return run_tool(tools.kubectl, kubeconfig, "--cache-dir", cache, *args)


def guide_pod(name: str) -> dict[str, Any]:
    """The guide's R9 pod (schedulerName tensor-fusion-scheduler), named `name`."""
    pod: dict[str, Any] = yaml.safe_load((GUIDE / "r09-simulate-pod.yaml").read_text())
    pod["metadata"]["name"] = name
    return pod


@dataclass
class RunningController:
    controller: Controller
    url: str
    webhook: RunningServer | None = None
    """The pod webhook's HTTPS server, when started with `webhook_cert_dir`."""

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@contextmanager
def running_controller(
    kubeconfig: Path,
    state_dir: Path,
    *,
    loops: tuple[LeaderLoop, ...] = (),
    command_loops: bool = False,
    holder: str | None = None,
    lease_duration_s: float = LEASE_DURATION_S,
    lease_renew_s: float = LEASE_RENEW_S,
    replica_slots: Callable[[ClusterStore], ReplicaSlots] = ReplicaSlots,
    **flags: Any,
) -> Iterator[RunningController]:
    """The controller and its management API (on 127.0.0.1, a free port), until the end;
    with a `webhook_cert_dir` flag its pod webhook too (HTTPS, 127.0.0.1, a free port).
    With `command_loops` its leader also runs the reconcilers that `tensor-fusion controller`
    runs under these flags."""
    config = replace(
        ControllerFlags(kubeconfig=kubeconfig, namespace=NAMESPACE, state_dir=state_dir), **flags
    )
    controller = Controller(
        config,
        loops=(*loops, *leader_loops(config)) if command_loops else loops,
        holder=holder,
        lease_duration_s=lease_duration_s,
        lease_renew_s=lease_renew_s,
        replica_slots=replica_slots,
    )
    controller.start()
    try:
        with ExitStack() as servers:
            server = servers.enter_context(start_in_thread(controller.api_app()))
            cert = controller.webhook_cert() if config.webhook_cert_dir else None
            webhook = (
                None
                if cert is None
                else servers.enter_context(start_in_thread(controller.webhook_app(), tls=cert))
            )
            yield RunningController(controller, server.url, webhook)
    finally:
        controller.stop()
