"""The guide's R15 pool, TensorFusion's own nodes on AWS, through KubeStore against the
API-server emulator, with moto as a stand-in for EC2 and a simulated clock: the pool scales
from no node to its warm capacity (EC2 refusing one instance type for lack of capacity),
up under load (pods the real scheduler found no room for, bound to the new nodes once they
are up) to its maximum and no further (CapacityCapped), and back down by compaction once
the load is gone. After every step each instance not terminated has its GPUNodeClaim and
each claim its instance: none is left untracked.

Nothing boots on moto's instances: tests/kube/aws_node_standin.py stands in for the kubelet
registering each EC2 node and the node agent reporting its GPUs. Reconciles are driven by
re-listing (`start`, `drain`), so no step waits on a watch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from moto import mock_aws

from tensorfusion.operator.nodepool.aws import AwsProvider
from tensorfusion.operator.nodepool.cloud import CLAIM_TAG, POOL_TAG
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.karpenter import SETTLE
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import apply_crds
from tests.kube.aws_node_standin import (
    REGION,
    forget_gone_nodes,
    node_class,
    r15_cluster,
    register_instance_nodes,
)
from tests.kube.instance_node import newest_node
from tests.kube.karpenter_standin import pending_pod
from tests.kube.runner import KubeApi
from tests.kube.scheduling_steps import bound, schedule_until_idle
from tests.unit.operator.sim_clock import SimClock

POOL = "tf-shared"
CAPACITY = {
    "warmResources": {"tflops": "50", "vram": "10Gi"},
    "maxResources": {"tflops": "605", "vram": "120Gi"},
}
"""Warm: what one L4 holds free. Maximum: five L4s (121 TFLOPS, 24Gi each)."""
PERIOD_S = 5 * 60
"""The pool's nodeCompaction period."""
NOT_TERMINATED = ("pending", "running", "shutting-down", "stopping", "stopped")


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        boto3.client("iam").create_instance_profile(InstanceProfileName="tensor-fusion")
        yield boto3.client("ec2", region_name=REGION)


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig) as kube_store:
        yield kube_store


def reconcile(controller: Controller, store: KubeStore, ec2: Any) -> None:
    """Reconcile until idle; bring up the nodes of new instances (stand-in) and again."""
    for _ in range(3):
        controller.start()
        controller.drain()
        registered = register_instance_nodes(store, ec2, POOL)
        if not registered and not forget_gone_nodes(store):
            break
    assert_every_instance_tracked(store, ec2)


def assert_every_instance_tracked(store: KubeStore, ec2: Any) -> None:
    """Every instance of the pool not terminated (stopped ones too: they come back, and
    their disks cost) is its claim's, and every claim has launched its instance."""
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{POOL_TAG}", "Values": [POOL]},
            {"Name": "instance-state-name", "Values": list(NOT_TERMINATED)},
        ]
    )["Reservations"]
    instances = {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]}.get(CLAIM_TAG)
        for r in reservations
        for i in r["Instances"]
    }
    claims = {c["metadata"]["name"]: c for c in store.list("GPUNodeClaim")}
    unlaunched = [
        f"{name} ({(c.get('status') or {}).get('message', 'no message')})"
        for name, c in claims.items()
        if not (c.get("status") or {}).get("instanceID")
    ]
    assert not unlaunched, f"claims without an instance: {unlaunched}"
    launched = {c["status"]["instanceID"]: name for name, c in claims.items()}
    assert launched == instances, f"claims {launched} != instances {instances}"


def claimed_types(store: KubeStore) -> list[str]:
    return sorted(c["spec"]["instanceType"] for c in store.list("GPUNodeClaim"))


def pool_condition(store: KubeStore, kind: str) -> dict[str, Any]:
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    found: dict[str, Any] = next(c for c in conditions if c["type"] == kind)
    return found


def refuse_capacity(ec2: Any, instance_type: str) -> None:
    """EC2 has no capacity for `instance_type` in any zone (moto always has)."""

    def handler(params: dict[str, Any], **_: Any) -> None:
        if params["body"]["InstanceType"] == instance_type:
            error = {"Code": "InsufficientInstanceCapacity", "Message": "no capacity"}
            raise ClientError({"Error": error}, "RunInstances")

    ec2.meta.events.register("before-call.ec2.RunInstances", handler)


def test_r15_pool_scales_to_warm_then_max_then_back_down(store: KubeStore, ec2: Any) -> None:
    """EC2 has no g6.xlarge: its claims launch g6.2xlarge, the type with the same GPU."""
    store.create(r15_cluster(CAPACITY, instance_types=("g6.xlarge", "g6.2xlarge", "g6.12xlarge")))
    store.create(node_class())
    refuse_capacity(ec2, "g6.xlarge")
    clock = SimClock(datetime.now(UTC))  # node ages are read against the emulator's clock
    provider = AwsProvider(ec2)
    config = NodePoolConfig(clouds={"aws": lambda vendor: provider})
    controller = Controller(store, clock=clock.monotonic, now=clock.now, node_pools=config)

    reconcile(controller, store, ec2)  # from nothing to the warm capacity
    assert claimed_types(store) == ["g6.2xlarge"]
    (claim,) = store.list("GPUNodeClaim")
    assert claim["status"]["phase"] == "Running"
    assert claim["status"]["message"].startswith("g6.xlarge: InsufficientInstanceCapacity")
    assert store.get("GPUPool", POOL)["status"]["costPerHour"] == "0.9776"
    (warm_node,) = (n["metadata"]["name"] for n in store.list("Node"))

    for index in range(6):  # load: six pods of a whole L4 each
        pod = pending_pod(f"big-{index}", "100", "20Gi")
        del pod["status"]  # the scheduler says why they wait
        del pod["metadata"]["uid"]
        store.create(pod)
    schedule_until_idle(store)  # one fits the warm node; five find no room
    assert list(bound(store).values()) == [warm_node]
    clock.advance_past(newest_node(store) + SETTLE)
    reconcile(controller, store, ec2)
    assert sorted(claimed_types(store)) == ["g6.12xlarge", "g6.2xlarge"]  # 5 L4s: the maximum
    assert all(c["status"]["phase"] == "Running" for c in store.list("GPUNodeClaim"))
    capped = pool_condition(store, "CapacityCapped")
    assert capped["status"] == "True"
    assert "maxResources" in capped["message"]
    schedule_until_idle(store)
    placed = bound(store)
    new_nodes = {n["metadata"]["name"] for n in store.list("Node")} - {warm_node}
    assert len(placed) == 5  # the sixth waits: the pool is at its maximum
    assert sorted(placed.values()) == sorted([warm_node, *[new_nodes.pop()] * 4])

    # Still loaded, a while later (less than a compaction period): nothing more claimed.
    clock.advance(PERIOD_S / 2)
    reconcile(controller, store, ec2)
    assert sorted(claimed_types(store)) == ["g6.12xlarge", "g6.2xlarge"]

    for pod in store.list("Pod", "default"):
        store.delete("Pod", pod["metadata"]["name"], "default")
    for _ in range(4):  # compaction, a period apart, releases the nodes warm does not need
        clock.advance(PERIOD_S + 1)
        reconcile(controller, store, ec2)
    assert claimed_types(store) == ["g6.12xlarge"]  # its free GPUs hold the warm capacity
    assert len(store.list("Node")) == 1
    assert pool_condition(store, "Compaction")["status"] == "True"
    released = [e for e in store.list("Event", "default") if e["reason"] == "NodeReleased"]
    assert len(released) == 1
