"""enabled-replicas and progressive migration through the controller's pod webhook, called by
the API-server emulator over HTTPS as kube-apiserver calls it, registered as the chart
registers it with migration on (`webhook_configuration`). The emulator runs no controllers, so
the test creates a ReplicaSet's pods as its controller would; the webhook's counts run on a
clock the test moves.

20 replicas admitted at once with N = 3 give exactly 3 converted pods; dry runs change
nothing; the slot of a pod whose create failed after admission is taken back after the grace;
deleting a converted pod frees its slot; pods keeping nvidia.com/gpu are kept off the nodes of
TensorFusion workers, and a pod labelled enabled "false" is not converted (R7)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    ENABLED_REPLICAS,
    NATIVE_GPU_RESOURCE,
    REPLICA_SLOT_LABEL,
    VRAM_LIMIT,
)
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.errors import AlreadyExistsError, NotFoundError
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.kube import KubeStore
from tensorfusion.webhook.native_pods import WITHOUT_WORKERS
from tensorfusion.webhook.replica_slots import COUNT_PREFIX, GRACE_S, ReplicaSlots
from tests.controller.cluster import NAMESPACE, fleet_store
from tests.kube.helpers import Api
from tests.kube.runner import KubeApi
from tests.kube.webhook_configuration import served_webhook, webhook_configuration

REPLICA_SET = "trainer-6d4f"
COUNT = f"{COUNT_PREFIX}replicaset-{REPLICA_SET}"
PARALLEL = 20


class Clock:
    """The webhook's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with fleet_store(kube_api.kubeconfig, nodes=2, gpus_per_node=2) as store:
        yield store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def webhook(
    kube_api: KubeApi,
    store: KubeStore,
    clock: Clock,
    tmp_path: Path,
    api_client: kubernetes.client.ApiClient,
) -> Iterator[None]:
    def slots(cluster: ClusterStore) -> ReplicaSlots:
        return ReplicaSlots(cluster, clock=clock)

    with served_webhook(
        kube_api.kubeconfig,
        tmp_path,
        replica_slots=slots,
        nvidia_operator_progressive_migration=True,
    ) as served:
        configuration = webhook_configuration(
            served.url, served.ca_bundle, release_namespace=NAMESPACE, migration=True
        )
        registrations: Api = kubernetes.client.AdmissionregistrationV1Api(api_client)
        registrations.create_mutating_webhook_configuration(configuration)
        yield


@pytest.fixture
def replica_set(store: KubeStore) -> dict[str, Any]:
    labels = {"app": "trainer"}
    return store.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": REPLICA_SET, "namespace": "default"},
            "spec": {
                "replicas": PARALLEL,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "cuda"}]},
                },
            },
        }
    )


def gpu_pod(
    name: str, labels: dict[str, str], annotations: dict[str, str], gpus: int = 0
) -> dict[str, Any]:
    """A pod in "default" whose one container asks for `gpus` native GPUs (none: no resources)."""
    resources = {"limits": {NATIVE_GPU_RESOURCE: str(gpus)}} if gpus else {}
    metadata = {"name": name, "namespace": "default", "labels": labels, "annotations": annotations}
    container = {"name": "main", "image": "cuda", "resources": resources}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container]},
    }


def replica(owner: dict[str, Any], name: str, replicas: int) -> dict[str, Any]:
    """A pod of `owner` as its controller creates it, asking for `replicas` converted."""
    labels = {"app": "trainer", ENABLED_LABEL: "true"}
    pod = gpu_pod(name, labels, {VRAM_LIMIT: "4Gi", ENABLED_REPLICAS: str(replicas)})
    reference = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True}
    owned = {"name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
    pod["metadata"]["ownerReferences"] = [{**reference, **owned}]
    return pod


def is_converted(pod: dict[str, Any]) -> bool:
    return bool(pod["spec"].get("schedulerName") == SCHEDULER_NAME)


def slots_taken(store: KubeStore) -> set[str]:
    try:
        return set(store.get("ConfigMap", COUNT, "default").get("data") or {})
    except NotFoundError:
        return set()


def required_terms(pod: dict[str, Any]) -> list[dict[str, Any]] | None:
    affinity = (pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    return None if required is None else list(required["nodeSelectorTerms"])


@pytest.mark.timing  # 20 admissions at once, each within the webhook's timeoutSeconds
def test_twenty_replicas_at_once_with_three_enabled_give_exactly_three_converted(
    store: KubeStore, webhook: None, replica_set: dict[str, Any]
) -> None:
    pods = [replica(replica_set, f"trainer-{index}", 3) for index in range(PARALLEL)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        created = list(pool.map(store.create, pods))
    assert len(created) == PARALLEL
    stored = store.list("Pod", "default", {"app": "trainer"})
    assert len(stored) == PARALLEL
    converted = [pod for pod in stored if is_converted(pod)]
    assert len(converted) == 3
    held = {pod["metadata"]["labels"][REPLICA_SLOT_LABEL] for pod in converted}
    assert held == slots_taken(store)
    for pod in stored:
        if not is_converted(pod):
            assert REPLICA_SLOT_LABEL not in pod["metadata"]["labels"]
            assert "initContainers" not in pod["spec"]
            assert pod["spec"]["containers"] == replica(replica_set, "any", 3)["spec"]["containers"]


@pytest.mark.timing  # the controller's start
def test_dry_runs_change_nothing(
    store: KubeStore, webhook: None, replica_set: dict[str, Any], core_v1: Api
) -> None:
    pod = replica(replica_set, "trainer-dry", 1)
    answer = core_v1.create_namespaced_pod("default", pod, dry_run="All")
    assert answer.spec.scheduler_name == SCHEDULER_NAME  # decided as a real create would be
    assert slots_taken(store) == set()
    store.create(replica(replica_set, "trainer-0", 1))
    count = store.get("ConfigMap", COUNT, "default")
    answer = core_v1.create_namespaced_pod("default", pod, dry_run="All")
    assert answer.spec.scheduler_name != SCHEDULER_NAME  # over its count
    assert store.get("ConfigMap", COUNT, "default") == count
    names = [p["metadata"]["name"] for p in store.list("Pod", "default", {"app": "trainer"})]
    assert names == ["trainer-0"]


@pytest.mark.timing  # the controller's start
def test_a_failed_creates_slot_is_taken_back_and_a_deleted_pods_freed(
    store: KubeStore, webhook: None, replica_set: dict[str, Any], clock: Clock
) -> None:
    store.create(gpu_pod("taken", {}, {}))
    # Admitted (a slot taken), then refused by the API server: its pod never appears.
    with pytest.raises(AlreadyExistsError):
        store.create(replica(replica_set, "taken", 1))
    (ghost,) = slots_taken(store)
    assert not is_converted(store.create(replica(replica_set, "trainer-a", 1)))
    clock.now += GRACE_S
    first = store.create(replica(replica_set, "trainer-b", 1))
    assert is_converted(first)
    assert slots_taken(store) == {first["metadata"]["labels"][REPLICA_SLOT_LABEL]} != {ghost}
    # A live converted pod keeps its slot, however long it runs.
    clock.now += 10 * GRACE_S
    assert not is_converted(store.create(replica(replica_set, "trainer-c", 1)))
    store.delete("Pod", "trainer-b", "default")
    second = store.create(replica(replica_set, "trainer-d", 1))
    assert is_converted(second)
    assert slots_taken(store) == {second["metadata"]["labels"][REPLICA_SLOT_LABEL]}


def native(name: str, *, enabled: str | None, gpus: int) -> dict[str, Any]:
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    return gpu_pod(name, labels, {VRAM_LIMIT: "4Gi"}, gpus)


@pytest.mark.timing  # the controller's start
def test_native_gpu_pods_are_kept_off_tensor_fusion_nodes_and_false_is_not_converted(
    store: KubeStore, webhook: None
) -> None:
    for name, enabled in (("native", None), ("rolled-back", "false")):
        stored = store.create(native(name, enabled=enabled, gpus=1))
        assert required_terms(stored) == [{"matchExpressions": [WITHOUT_WORKERS]}]
        assert not is_converted(stored)
        assert stored["metadata"]["annotations"] == {VRAM_LIMIT: "4Gi"}
        assert (
            stored["spec"]["containers"]
            == native(name, enabled=enabled, gpus=1)["spec"]["containers"]
        )
    cpu_only = store.create(native("cpu-only", enabled=None, gpus=0))
    assert required_terms(cpu_only) is None
    converted = store.create(native("converted", enabled="true", gpus=1))
    assert is_converted(converted)
    assert required_terms(converted) is None
