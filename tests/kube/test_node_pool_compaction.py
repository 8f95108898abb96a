"""Compaction of a Karpenter pool through KubeStore against the API-server emulator, on a
simulated clock: of six nodes, three are empty, one runs a TensorFusion worker, one is marked
do-not-disrupt and one runs a pod holding `nvidia.com/gpu`. With minResources and
warmResources set, compaction deletes exactly the NodeClaims of the empty nodes the pool can
spare (whichever of the two binds), none of the others. Karpenter does not run here: its
NodeClaim CRD is served (an open schema) and the claims are objects nothing else acts on; they
carry Karpenter's termination finalizer, so a deleted claim stays, being deleted, as it does
until Karpenter has terminated its node."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import kubernetes
import pytest

from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.compaction import LAST_COMPACTION_ANNOTATION
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.kube import KubeStore
from tensorfusion.store.timestamps import parse_rfc3339, rfc3339
from tests.crd_bodies import crd_bodies
from tests.kube.karpenter_crd import install, nodeclaim_crd
from tests.kube.runner import KubeApi
from tests.unit.operator.reconciler_objects import cluster, gpu, node, pod
from tests.unit.operator.sim_clock import SimClock
from tests.unit.operator.test_compaction import POOL, node_claim, plain_pod, pool_spec

NODES = ("e0", "e1", "e2", "worker", "keep", "cuda")
"""Each node has two GPUs of 40Gi: 480Gi in all; 476Gi free with the worker's 4Gi taken."""
KEPT = "kept: 1 do-not-disrupt, 1 with TensorFusion workers, 1 with nvidia.com/gpu pods"


@pytest.fixture
def store(kube_api: KubeApi, api_client: kubernetes.client.ApiClient) -> Iterator[KubeStore]:
    install(api_client, nodeclaim_crd(), *crd_bodies())
    with KubeStore(kube_api.kubeconfig) as kube:
        yield kube


def reconcile(controller: Controller) -> None:
    """List everything again and reconcile until idle (no waiting for watch events)."""
    controller.start()
    controller.drain()


def compacted(store: KubeStore, capacity: Mapping[str, Any]) -> tuple[Controller, SimClock]:
    """The six-node fleet reconciled a day after it came up, then the pool's nodeCompaction
    (every 5m, with `capacity`) turned on and reconciled."""
    spec = pool_spec(compaction={"period": "5m"}, capacity=capacity)
    without: dict[str, Any] = copy.deepcopy(spec)
    del without["specTemplate"]["nodeManagerConfig"]["nodeCompaction"]
    store.create(cluster([without]))
    for name in NODES:
        obj = node(name, labels={POOL_LABEL: POOL})
        if name == "keep":
            obj["metadata"]["annotations"] = {"karpenter.sh/do-not-disrupt": "true"}
        store.create(obj)
        for index in range(2):
            store.create(gpu(name, index, POOL))
        store.create(node_claim(name))
    store.create(pod("w", "worker", ["worker-gpu-0"], "10", "4Gi"))
    store.create(plain_pod("cuda-app", "cuda", **{"nvidia.com/gpu": "1"}))
    created = max(parse_rfc3339(n["metadata"]["creationTimestamp"]) for n in store.list("Node"))
    clock = SimClock(created + timedelta(days=1))
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    reconcile(controller)
    assert sorted(n["metadata"]["name"] for n in store.list("GPUNode")) == sorted(NODES)
    assert store.get("GPUPool", POOL)["status"]["availableVRAM"] == "476Gi"
    store.patch("TensorFusionCluster", "c", {"spec": {"gpuPools": [spec]}})
    reconcile(controller)
    return controller, clock


def claims(store: KubeStore) -> tuple[list[str], list[str]]:
    """(live, being deleted) NodeClaims."""
    found = store.list("NodeClaim")
    deleting = {c["metadata"]["name"] for c in found if c["metadata"].get("deletionTimestamp")}
    live = {c["metadata"]["name"] for c in found} - deleting
    return sorted(live), sorted(deleting)


def condition_message(store: KubeStore) -> str:
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    found = next(c for c in conditions if c["type"] == "Compaction")
    assert found["reason"] == "Compacted"
    return str(found["message"])


def events(store: KubeStore) -> list[str]:
    return sorted(
        e["message"]
        for e in store.list("Event", namespace="default")
        if e["reason"] == "NodeCompacted"
    )


def test_compaction_deletes_only_the_claims_of_spare_empty_nodes(store: KubeStore) -> None:
    # The minimum lets two empty nodes go (320Gi left), and the warm capacity holds after
    # both (316Gi free).
    capacity = {"minResources": {"vram": "320Gi"}, "warmResources": {"vram": "300Gi"}}
    controller, clock = compacted(store, capacity)

    assert claims(store) == (["nc-cuda", "nc-e2", "nc-keep", "nc-worker"], ["nc-e0", "nc-e1"])
    pool = store.get("GPUPool", POOL)
    assert pool["metadata"]["annotations"][LAST_COMPACTION_ANNOTATION] == rfc3339(clock.now())
    assert condition_message(store).startswith(f"leaving: e0, e1; {KEPT}, ")
    assert events(store) == ["node e0: deleted NodeClaim nc-e0", "node e1: deleted NodeClaim nc-e1"]

    # A period later the pool is at its minimum: nothing more goes.
    clock.advance(300)
    reconcile(controller)
    assert claims(store) == (["nc-cuda", "nc-e2", "nc-keep", "nc-worker"], ["nc-e0", "nc-e1"])
    assert f"{KEPT}, 1 for minResources;" in condition_message(store)


def test_warm_capacity_keeps_nodes_the_minimum_would_let_go(store: KubeStore) -> None:
    # The minimum would let all three empty nodes go (240Gi left); the warm capacity lets one
    # (396Gi free after it, 316Gi after a second).
    capacity = {"minResources": {"vram": "160Gi"}, "warmResources": {"vram": "390Gi"}}
    controller, clock = compacted(store, capacity)

    assert claims(store) == (["nc-cuda", "nc-e1", "nc-e2", "nc-keep", "nc-worker"], ["nc-e0"])
    assert events(store) == ["node e0: deleted NodeClaim nc-e0"]
    assert condition_message(store).startswith(f"leaving: e0; {KEPT}, 2 for warmResources;")

    # The leaving node's free capacity is not counted on: a period later nothing more goes.
    clock.advance(300)
    reconcile(controller)
    assert claims(store) == (["nc-cuda", "nc-e1", "nc-e2", "nc-keep", "nc-worker"], ["nc-e0"])
    assert f"{KEPT}, 2 for warmResources;" in condition_message(store)
