"""A pool's own GPU nodes on AWS, through the node-pool reconciler over the local store, a
simulated clock and moto (a stand-in for EC2, in process): a claim is made, then launched,
and records its instance, cost and why; refusals are retried with backoff or fail the claim;
no instance is ever left without its claim; a released claim's instance is terminated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from moto import mock_aws

from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.aws import AwsProvider
from tensorfusion.operator.nodepool.cloud import CLAIM_TAG, POOL_TAG, Instance
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.karpenter import SETTLE
from tensorfusion.operator.nodepool.provisioned import (
    ATTEMPTS_ANNOTATION,
    INSTANCE_ANNOTATION,
    LAUNCH_GRACE_S,
    RETRY_ANNOTATION,
    SWEEP_S,
    provisioned_in_flight,
)
from tensorfusion.operator.nodepool.reconciler import plan_for_pool
from tensorfusion.operator.nodepool.release import RELEASE_ANNOTATION
from tensorfusion.operator.nodepool.view import pool_view
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.local import LocalStore
from tensorfusion.store.timestamps import parse_rfc3339
from tests.kube.aws_node_standin import (
    IMAGE,
    REGION,
    node_class,
    r15_cluster,
    register_instance_nodes,
)

from .sim_clock import SimClock

POOL = "tf-shared"
WARM_ONE_NODE = {"warmResources": {"tflops": "50", "vram": "10Gi"}}
"""Free capacity one g6.xlarge (one L4) holds."""
TYPES_WITH_A_SIBLING = ("g6.xlarge", "g6.2xlarge", "g6.12xlarge")
"""g6.2xlarge has the GPUs of g6.xlarge (one L4): a fallback for it."""


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        boto3.client("iam").create_instance_profile(InstanceProfileName="tensor-fusion")
        yield


@pytest.fixture
def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


@pytest.fixture
def clock() -> SimClock:
    return SimClock(datetime(2026, 3, 1, 12, 0))


def controller(store: LocalStore, clock: SimClock, ec2: Any) -> Controller:
    config = NodePoolConfig(clouds={"aws": lambda vendor: AwsProvider(ec2)})
    return Controller(store, clock=clock.monotonic, now=clock.now, node_pools=config)


def converge(store: LocalStore, clock: SimClock, ec2: Any) -> Controller:
    running = controller(store, clock, ec2)
    running.start()
    running.drain()
    return running


def claims(store: LocalStore) -> list[dict[str, Any]]:
    return store.list("GPUNodeClaim")


def live_instances(ec2: Any) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def condition(store: LocalStore, kind: str = "Provisioning") -> dict[str, Any]:
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    found: dict[str, Any] = next(c for c in conditions if c["type"] == kind)
    return found


def events(store: LocalStore, reason: str) -> list[str]:
    return [e["message"] for e in store.list("Event") if e["reason"] == reason]


def run_instances_calls(ec2: Any, refuse: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Record every RunInstances call; those for an instance type in `refuse` fail with its
    error code, as EC2 would answer."""
    calls: list[dict[str, Any]] = []

    def handler(params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        calls.append(body)
        code = (refuse or {}).get(body["InstanceType"])
        if code:
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "RunInstances")

    ec2.meta.events.register("before-call.ec2.RunInstances", handler)
    return calls


def test_a_claim_is_made_then_launched_and_runs_once_its_node_registers(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    converge(store, clock, ec2)
    (claim,) = claims(store)
    (instance,) = live_instances(ec2)
    assert claim["metadata"]["labels"] == {POOL_LABEL: POOL}
    assert claim["spec"]["instanceType"] == "g6.xlarge" == instance["InstanceType"]
    assert claim["spec"]["region"] == REGION
    assert claim["spec"]["zone"] == "us-east-1b" == instance["Placement"]["AvailabilityZone"]
    assert claim["spec"]["capacityType"] == "OnDemand"
    assert claim["spec"]["gpuDeviceOffered"] == 1
    assert claim["spec"]["nodeClassRef"]["name"] == "tf-node-class"
    assert claim["status"]["phase"] == "Provisioning"
    assert claim["status"]["instanceID"] == instance["InstanceId"]
    assert claim["status"]["costPerHour"] == "0.8048"
    assert claim["status"]["message"] == "launched g6.xlarge in us-east-1b"
    assert instance["ImageId"] == IMAGE
    assert instance["KeyName"] == "ec2-ssh-key-pair"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert (tags[CLAIM_TAG], tags[POOL_TAG]) == (claim["metadata"]["name"], POOL)
    assert instance["ClientToken"] == claim["metadata"]["name"]
    assert condition(store)["reason"] == "Launching"

    (node,) = register_instance_nodes(store, ec2, POOL)
    converge(store, clock, ec2)
    (claim,) = claims(store)
    assert (claim["status"]["phase"], claim["spec"]["nodeName"]) == ("Running", node)
    assert len(live_instances(ec2)) == 1  # the node holds the warm capacity: no second
    assert condition(store)["reason"] == "Ready"


def test_a_second_pass_launches_nothing_more(store: LocalStore, clock: SimClock, ec2: Any) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    calls = run_instances_calls(ec2)
    converge(store, clock, ec2)
    converge(store, clock, ec2)  # a new controller (a new leader) over the same objects
    clock.advance(600)
    converge(store, clock, ec2)
    assert len(calls) == 1
    assert len(claims(store)) == 1


def test_no_capacity_falls_back_only_to_types_with_the_same_gpus(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    """maxResources 200 TFLOPS: one L4 (121) fits, the 4-L4 g6.12xlarge (484) would not."""
    capacity = {**WARM_ONE_NODE, "maxResources": {"tflops": "200", "vram": "40Gi"}}
    store.create(r15_cluster(capacity, instance_types=TYPES_WITH_A_SIBLING))
    store.create(node_class())
    calls = run_instances_calls(ec2, refuse={"g6.xlarge": "InsufficientInstanceCapacity"})
    converge(store, clock, ec2)
    (claim,) = claims(store)
    (instance,) = live_instances(ec2)
    assert instance["InstanceType"] == "g6.2xlarge" == claim["spec"]["instanceType"]
    assert claim["spec"]["gpuDeviceOffered"] == 1
    assert claim["status"]["costPerHour"] == "0.9776"
    assert claim["status"]["message"] == (
        "g6.xlarge: InsufficientInstanceCapacity in us-east-1b, InsufficientInstanceCapacity "
        "in us-east-1c, InsufficientInstanceCapacity in us-east-1d; "
        "launched g6.2xlarge in us-east-1b"
    )
    assert "g6.12xlarge" not in {c["InstanceType"] for c in calls}


def test_no_capacity_and_no_type_with_the_same_gpus_waits_and_retries(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))  # g6.xlarge (1 L4), g6.12xlarge (4 L4)
    store.create(node_class())
    calls = run_instances_calls(ec2, refuse={"g6.xlarge": "InsufficientInstanceCapacity"})
    converge(store, clock, ec2)
    (claim,) = claims(store)
    assert live_instances(ec2) == []
    assert {c["InstanceType"] for c in calls} == {"g6.xlarge"}
    assert claim["status"]["phase"] == "Pending"
    assert claim["metadata"]["annotations"][RETRY_ANNOTATION] == "2026-03-01T12:00:30Z"
    assert condition(store)["reason"] == "InsufficientCapacity"


def test_a_node_whose_gpus_are_not_reported_yet_gets_no_second_instance(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    """The claim is Running once its Node registers, but its GPUs count only once the agent
    reports them: meanwhile it is still on its way."""
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    register_instance_nodes(store, ec2, POOL)
    for gpu in store.list("GPU"):  # the agent has not reported them yet
        store.delete("GPU", gpu["metadata"]["name"])
    running.start()
    running.drain()
    (claim,) = claims(store)
    assert claim["status"]["phase"] == "Running"
    assert len(live_instances(ec2)) == 1
    clock.advance(600)
    running.drain()
    assert len(live_instances(ec2)) == 1


def test_a_node_with_its_gpus_is_on_its_way_until_it_settles(store: LocalStore, ec2: Any) -> None:
    """The pods it was launched for take a moment to be scheduled onto it: until SETTLE has
    passed since it registered, it still counts, and the pool is looked at again then."""
    clock = SimClock(datetime.now(UTC))  # near the store's clock, which stamps the Node
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    (node,) = register_instance_nodes(store, ec2, POOL)
    running.start()
    running.drain()
    view = pool_view(running.cache, POOL, running.context.node_pools)
    assert view is not None
    settled = parse_rfc3339(store.get("Node", node)["metadata"]["creationTimestamp"]) + SETTLE
    now = clock.now()
    assert [s.instance_type for s in provisioned_in_flight(view, now)] == ["g6.xlarge"]
    assert provisioned_in_flight(view, settled) == []
    plan = plan_for_pool(running.cache, POOL, running.context.node_pools, now)
    (provisioning,) = [p for p in plan.parts if p.part == "provisioning"]
    assert provisioning.wake_at == settled


def test_a_malformed_node_class_fails_the_claim_naming_it(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    bad = node_class()
    bad["spec"]["osImageSelectorTerms"] = "ami-12c6146b"  # not a list
    store.create(bad)
    running = converge(store, clock, ec2)
    (claim,) = claims(store)
    assert claim["status"]["phase"] == "Failed"
    assert (
        "GPUNodeClass tf-node-class: spec.osImageSelectorTerms: must be a list"
        in claim["status"]["message"]
    )
    cond = condition(store)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidRequest")
    assert "InvalidNodeClass" in cond["message"]
    assert live_instances(ec2) == []
    clock.advance(SWEEP_S)
    running.drain()  # later passes go on, holding new claims
    assert len(claims(store)) == 1


def test_an_instance_listed_only_after_its_claim_is_gone_is_terminated_by_the_sweep(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster({}))  # no claim, nothing to change in the cluster
    store.create(node_class())
    running = converge(store, clock, ec2)
    orphan = tagged_instance(ec2, "tf-shared-deleted")  # the listing shows it only now
    clock.advance(SWEEP_S)
    running.drain()
    assert live_instances(ec2) == []
    (message,) = events(store, "UntrackedInstanceTerminated")
    assert orphan in message


def test_an_instance_its_claim_does_not_name_is_terminated_after_the_grace(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    (claim,) = claims(store)
    stray = tagged_instance(ec2, claim["metadata"]["name"])
    running.start()
    running.drain()
    assert len(live_instances(ec2)) == 2  # the listing may lag just after a launch
    clock.advance(LAUNCH_GRACE_S)
    running.drain()
    assert [i["InstanceId"] for i in live_instances(ec2)] == [claim["status"]["instanceID"]]
    (message,) = events(store, "UntrackedInstanceTerminated")
    assert stray in message


def test_a_claim_name_is_never_used_again(store: LocalStore, clock: SimClock, ec2: Any) -> None:
    """A name is the launch's ClientToken: a new claim made at the same moment as a deleted
    one must not repeat its name."""
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    (first,) = claims(store)
    ec2.terminate_instances(InstanceIds=[first["status"]["instanceID"]])
    store.delete("GPUNodeClaim", first["metadata"]["name"])
    running.start()
    running.drain()
    (second,) = claims(store)
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert second["metadata"]["name"].startswith(f"{POOL}-")
    (instance,) = live_instances(ec2)
    assert instance["ClientToken"] == second["metadata"]["name"]


def test_throttling_is_retried_after_a_backoff(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    refusals = {"g6.xlarge": "RequestLimitExceeded"}
    calls = run_instances_calls(ec2, refuse=refusals)
    running = converge(store, clock, ec2)
    (claim,) = claims(store)
    name = claim["metadata"]["name"]
    annotations = claim["metadata"]["annotations"]
    assert annotations[ATTEMPTS_ANNOTATION] == "1"
    assert annotations[RETRY_ANNOTATION] == "2026-03-01T12:00:30Z"
    assert claim["status"]["phase"] == "Pending"
    assert live_instances(ec2) == []
    cond = condition(store)
    assert (cond["status"], cond["reason"]) == ("False", "Throttled")
    assert name in cond["message"]
    assert "RequestLimitExceeded" in cond["message"]
    assert len(calls) == 1

    clock.advance(29)
    running.drain()
    assert len(calls) == 1  # not before the backoff ends

    clock.advance(1)
    running.drain()
    assert len(calls) == 2  # refused again: twice as long now
    claim = store.get("GPUNodeClaim", name)
    assert claim["metadata"]["annotations"][RETRY_ANNOTATION] == "2026-03-01T12:01:30Z"

    refusals.clear()
    clock.advance(59)
    running.drain()
    assert len(calls) == 2
    clock.advance(1)
    running.drain()
    assert len(calls) == 3
    (instance,) = live_instances(ec2)
    claim = store.get("GPUNodeClaim", name)
    assert claim["status"]["instanceID"] == instance["InstanceId"]
    assert claim["status"]["phase"] == "Provisioning"
    assert RETRY_ANNOTATION not in claim["metadata"]["annotations"]
    assert condition(store)["status"] == "True"


def test_a_refusal_waiting_does_not_mend_fails_the_claim_and_holds_new_ones(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))  # no GPUNodeClass, no imageId: no image
    running = converge(store, clock, ec2)
    (claim,) = claims(store)
    assert claim["status"]["phase"] == "Failed"
    assert "extraParams.imageId" in claim["status"]["message"]
    cond = condition(store)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidRequest")
    assert claim["metadata"]["name"] in cond["message"]
    clock.advance(3600)
    running.drain()
    assert len(claims(store)) == 1  # no claim after claim, each failing the same way
    plan = plan_for_pool(running.cache, POOL, running.context.node_pools, clock.now())
    held = [a for a in plan.to_json()["actions"] if a["kind"] == "create-nodeclaim"]
    assert [a["state"] for a in held] == ["held"]

    store.delete("GPUNodeClaim", claim["metadata"]["name"])  # the person fixed it
    store.create(node_class())
    converge(store, clock, ec2)
    (claim,) = claims(store)
    assert claim["status"]["phase"] == "Provisioning"


def test_bad_credentials_fail_the_claim_and_say_so(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    run_instances_calls(ec2, refuse={"g6.xlarge": "UnauthorizedOperation"})
    converge(store, clock, ec2)
    assert claims(store)[0]["status"]["phase"] == "Failed"
    assert condition(store)["reason"] == "BadCredentials"


def test_without_a_computing_vendor_nothing_is_launched(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE, vendor={}))
    converge(store, clock, ec2)
    assert claims(store) == []
    assert live_instances(ec2) == []
    cond = condition(store)
    assert (cond["status"], cond["reason"]) == ("False", "NoComputingVendor")
    assert cond["message"].startswith("computingVendor:")


def test_a_disabled_vendor_or_one_without_region_launches_nothing(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    vendor = r15_cluster({})["spec"]["computingVendor"]
    store.create(r15_cluster(WARM_ONE_NODE, vendor={**vendor, "enable": False}))
    converge(store, clock, ec2)
    assert condition(store)["message"].startswith("computingVendor.enable")
    store.delete("TensorFusionCluster", "tf")
    store.create(r15_cluster(WARM_ONE_NODE, name="tf", vendor={**vendor, "params": {}}))
    converge(store, clock, ec2)
    assert condition(store)["message"].startswith("computingVendor.params.defaultRegion")
    assert claims(store) == []
    assert live_instances(ec2) == []


def tagged_instance(ec2: Any, claim: str) -> str:
    """An instance of the pool tagged with `claim`, launched behind the controller's back."""
    tags = [{"Key": POOL_TAG, "Value": POOL}, {"Key": CLAIM_TAG, "Value": claim}]
    instance_id: str = ec2.run_instances(
        ImageId=IMAGE,
        InstanceType="g6.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    return instance_id


def test_an_instance_without_a_claim_is_terminated(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster({}))
    store.create(node_class())
    orphan = tagged_instance(ec2, "tf-shared-gone")
    other = ec2.run_instances(ImageId=IMAGE, InstanceType="g6.xlarge", MinCount=1, MaxCount=1)
    converge(store, clock, ec2)
    assert [i["InstanceId"] for i in live_instances(ec2)] == [
        other["Instances"][0]["InstanceId"]  # not the pool's: left alone
    ]
    (message,) = events(store, "UntrackedInstanceTerminated")
    assert orphan in message


def test_a_released_claim_is_terminated_then_deleted_with_its_node(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    (node,) = register_instance_nodes(store, ec2, POOL)
    running.start()
    running.drain()
    cluster = store.get("TensorFusionCluster", "tf")
    del cluster["spec"]["gpuPools"][0]["specTemplate"]["capacityConfig"]
    store.update(cluster)  # no warm capacity any more: the node may go
    (claim,) = claims(store)
    name = claim["metadata"]["name"]
    store.patch("GPUNodeClaim", name, {"metadata": {"annotations": {RELEASE_ANNOTATION: "now"}}})
    running.start()
    running.drain()  # terminated (Terminating); the next look finds it gone (moto is quick)
    assert live_instances(ec2) == []
    assert claims(store) == []
    assert node not in {n["metadata"]["name"] for n in store.list("Node")}
    (message,) = events(store, "NodeReleased")
    assert name in message
    assert claim["metadata"]["annotations"][INSTANCE_ANNOTATION] in message


def test_a_claim_whose_instance_vanished_is_deleted_after_a_grace(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    running = converge(store, clock, ec2)
    (claim,) = claims(store)
    ec2.terminate_instances(InstanceIds=[claim["status"]["instanceID"]])  # e.g. spot reclaimed
    clock.advance(30)
    running.drain()
    assert claims(store)[0]["metadata"]["name"] == claim["metadata"]["name"]  # maybe not listed yet
    clock.advance(300)
    running.drain()
    names = [c["metadata"]["name"] for c in claims(store)]
    assert claim["metadata"]["name"] not in names
    (message,) = events(store, "InstanceLost")
    assert claim["metadata"]["name"] in message
    assert len(names) == 1  # the warm capacity is claimed again


class SlowShutdown(AwsProvider):
    """EC2 as it is: an instance told to terminate is shutting-down for a while (moto ends
    it at once). `finish` ends the instances told to go."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.going: list[str] = []

    def terminate(self, instance_ids: Sequence[str]) -> None:
        self.going.extend(instance_ids)

    def instances(self, pool: str) -> list[Instance]:
        return [
            replace(i, state="shutting-down") if i.instance_id in self.going else i
            for i in super().instances(pool)
        ]

    def finish(self) -> None:
        super().terminate(self.going)


def test_a_released_claim_is_terminating_until_its_instance_is_gone(
    store: LocalStore, clock: SimClock, ec2: Any
) -> None:
    store.create(r15_cluster(WARM_ONE_NODE))
    store.create(node_class())
    provider = SlowShutdown(ec2)
    config = NodePoolConfig(clouds={"aws": lambda vendor: provider})
    running = Controller(store, clock=clock.monotonic, now=clock.now, node_pools=config)
    running.start()
    running.drain()
    (claim,) = claims(store)
    name = claim["metadata"]["name"]
    store.patch("GPUNodeClaim", name, {"metadata": {"annotations": {RELEASE_ANNOTATION: "x"}}})
    running.start()
    running.drain()
    assert provider.going == [claim["status"]["instanceID"]]  # told once, not every pass
    assert store.get("GPUNodeClaim", name)["status"]["phase"] == "Terminating"
    clock.advance(30)
    running.drain()
    assert store.get("GPUNodeClaim", name)["status"]["phase"] == "Terminating"
    provider.finish()
    clock.advance(30)  # the pool is looked at again while an instance is on its way
    running.drain()
    assert name not in {c["metadata"]["name"] for c in claims(store)}
