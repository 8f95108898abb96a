"""The pod webhook's decision: which pods it converts, into what, and which it refuses."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    ENABLED_REPLICAS,
    GPU_COUNT,
    GPU_POOL,
    INJECT_CONTAINER,
    NATIVE_GPU_RESOURCE,
    QOS,
    REPLICA_SLOT_LABEL,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.store.local import LocalStore
from tensorfusion.webhook.conversion import USED_BY_TOLERATION
from tensorfusion.webhook.decision import Decision, decide
from tensorfusion.webhook.native_pods import WITHOUT_WORKERS
from tensorfusion.webhook.shim_injection import (
    INIT_CONTAINER,
    REGIONS_VOLUME,
    SHIM_PATH,
    SHIM_VOLUME,
)
from tests.kube.patches import json_patch

from .pods import IMAGE, admission, container, converted, decided, owned_by, pool, tf_pod

GIB = 1 << 30


@pytest.mark.parametrize("enabled", ["false", None])
def test_a_pod_not_enabled_is_allowed_unchanged(enabled: str | None) -> None:
    pod = tf_pod(enabled=enabled)
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "1"}}
    decision = decided(pod)
    assert decision.allowed
    assert decision.patch == []


def test_an_enabled_pod_gets_the_scheduler_the_shim_and_the_toleration() -> None:
    pod = converted(tf_pod())
    spec = pod["spec"]
    assert spec["schedulerName"] == SCHEDULER_NAME
    assert USED_BY_TOLERATION in spec["tolerations"]
    (init,) = spec["initContainers"]
    assert (init["name"], init["image"]) == (INIT_CONTAINER, IMAGE)
    assert init["command"][init["command"].index("--copy-shim-to") + 1] == SHIM_PATH
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[SHIM_VOLUME] == {"name": SHIM_VOLUME, "emptyDir": {}}
    assert volumes[REGIONS_VOLUME]["hostPath"]["path"] == "/run/tensor-fusion/shm"
    main = container(pod, "main")
    env = {item["name"]: item for item in main["env"]}
    assert env["LD_PRELOAD"]["value"] == SHIM_PATH
    assert env["TF_VRAM_LIMIT"]["value"] == str(16 * GIB)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    mounts = {mount["name"]: mount for mount in main["volumeMounts"]}
    assert mounts[REGIONS_VOLUME]["subPathExpr"] == "$(POD_NAMESPACE)/$(POD_NAME)"
    assert mounts[SHIM_VOLUME]["readOnly"] is True


def test_annotations_are_normalised_requests_from_limits_and_the_default_pool() -> None:
    annotations = converted(tf_pod())["metadata"]["annotations"]
    assert annotations[TFLOPS_REQUEST] == annotations[TFLOPS_LIMIT] == "100"
    assert annotations[VRAM_REQUEST] == annotations[VRAM_LIMIT] == "16Gi"
    assert annotations[GPU_POOL] == "shared"
    assert annotations[GPU_COUNT] == "1"
    assert annotations[QOS] == "high"  # request == limit for both


@pytest.mark.parametrize(
    ("pools", "given", "qos"),
    [
        ([pool("shared", default=True, default_qos="low")], {}, "low"),
        ([pool("shared", default=True)], {}, "medium"),
        ([pool("shared", default=True, default_qos="low")], {QOS: "critical"}, "critical"),
    ],
)
def test_qos_below_the_limit_is_the_pools_default_else_medium(
    pools: list[dict[str, Any]], given: dict[str, str], qos: str
) -> None:
    pod = tf_pod({TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "100", VRAM_LIMIT: "4Gi", **given})
    assert converted(pod, pools)["metadata"]["annotations"][QOS] == qos


def test_a_named_pool_is_kept() -> None:
    pod = tf_pod({VRAM_LIMIT: "4Gi", GPU_POOL: "training"})
    assert converted(pod)["metadata"]["annotations"][GPU_POOL] == "training"


@pytest.mark.parametrize(
    ("given", "pools", "expected"),
    [
        ({GPU_POOL: "nowhere"}, None, "pool 'nowhere' does not exist"),
        ({}, [pool("a"), pool("b")], "not set and no pool is the default"),
        ({}, [], "no GPU pool exists"),
    ],
)
def test_a_pod_without_a_pool_to_go_to_is_denied(
    given: dict[str, str], pools: list[dict[str, Any]] | None, expected: str
) -> None:
    decision = decided(tf_pod({VRAM_LIMIT: "4Gi", **given}), pools)
    assert not decision.allowed
    assert expected in decision.message


def test_native_gpus_are_removed_and_give_the_gpu_count() -> None:
    pod = tf_pod()
    main = pod["spec"]["containers"][0]
    main["resources"] = {
        "requests": {NATIVE_GPU_RESOURCE: "2", "cpu": "1"},
        "limits": {NATIVE_GPU_RESOURCE: "2"},
    }
    result = converted(pod)
    assert container(result, "main")["resources"] == {"requests": {"cpu": "1"}, "limits": {}}
    assert result["metadata"]["annotations"][GPU_COUNT] == "2"


def test_an_explicit_gpu_count_wins_over_native_gpus() -> None:
    pod = tf_pod({VRAM_LIMIT: "4Gi", GPU_COUNT: "3"})
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "1"}}
    result = converted(pod)
    assert result["metadata"]["annotations"][GPU_COUNT] == "3"
    assert NATIVE_GPU_RESOURCE not in str(result["spec"])


def test_too_many_native_gpus_are_denied_naming_the_resource() -> None:
    pod = tf_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "129"}}
    decision = decided(pod)
    assert not decision.allowed
    assert decision.message.startswith(f"{NATIVE_GPU_RESOURCE}: ")
    assert GPU_COUNT in decision.message


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({VRAM_LIMIT: "16Gx"}, VRAM_LIMIT),
        ({TFLOPS_REQUEST: "200", TFLOPS_LIMIT: "100"}, TFLOPS_LIMIT),
        ({VRAM_LIMIT: "4Gi", QOS: "urgent"}, QOS),
        ({VRAM_LIMIT: "4Gi", GPU_COUNT: "two"}, GPU_COUNT),
        ({VRAM_LIMIT: "4Gi", GPU_COUNT: "0"}, GPU_COUNT),
        ({VRAM_LIMIT: "4Gi", INJECT_CONTAINER: "sidecar"}, INJECT_CONTAINER),
    ],
)
def test_a_pod_it_cannot_read_is_denied_naming_the_annotation(
    annotations: dict[str, str], named: str
) -> None:
    decision = decided(tf_pod(annotations))
    assert not decision.allowed
    assert decision.message.startswith(f"{named}: ")
    assert decision.patch == []


def test_a_malformed_container_resource_is_denied_naming_the_field() -> None:
    pod = tf_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "one"}}
    decision = decided(pod)
    assert not decision.allowed
    assert f"spec.containers[0].resources.limits.{NATIVE_GPU_RESOURCE}" in decision.message


def test_several_containers_need_inject_container() -> None:
    decision = decided(tf_pod(containers=("main", "sidecar")))
    assert not decision.allowed
    assert decision.message.startswith(f"{INJECT_CONTAINER}: required")


def test_only_the_inject_container_gets_the_shim() -> None:
    pod = tf_pod({VRAM_LIMIT: "4Gi", INJECT_CONTAINER: "main"}, containers=("sidecar", "main"))
    result = converted(pod)
    assert "env" not in container(result, "sidecar")
    assert "volumeMounts" not in container(result, "sidecar")
    assert any(item["name"] == "LD_PRELOAD" for item in container(result, "main")["env"])


def test_a_preloaded_library_is_kept_after_the_shim() -> None:
    pod = tf_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "LD_PRELOAD", "value": "/opt/libx.so"}]
    env = container(converted(pod), "main")["env"]
    (preload,) = [item for item in env if item["name"] == "LD_PRELOAD"]
    assert preload["value"] == f"{SHIM_PATH}:/opt/libx.so"


def test_converting_a_converted_pod_changes_nothing() -> None:
    pod = tf_pod({VRAM_LIMIT: "4Gi", INJECT_CONTAINER: "main"}, containers=("main", "side"))
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "1"}}
    pod["spec"]["containers"][0]["env"] = [{"name": "LD_PRELOAD", "value": "/opt/libx.so"}]
    once = converted(pod)
    decision = decided(once)
    assert decision.allowed
    assert decision.patch == []
    assert converted(copy.deepcopy(once)) == once


def test_the_annotations_of_a_pod_not_enabled_are_not_read() -> None:
    decision = decided(tf_pod({VRAM_LIMIT: "16Gx"}, enabled="false"))
    assert (decision.allowed, decision.patch) == (True, [])


def test_explicit_nulls_are_taken_for_empty_lists() -> None:
    pod = tf_pod()
    pod["spec"].update(initContainers=None, volumes=None, tolerations=None)
    pod["spec"]["containers"][0].update(env=None, volumeMounts=None)
    result = converted(pod)
    assert [c["name"] for c in result["spec"]["initContainers"]] == [INIT_CONTAINER]
    assert result["spec"]["tolerations"] == [USED_BY_TOLERATION]


# --- enabled-replicas -------------------------------------------------------------------


@pytest.fixture
def counts() -> Iterator[LocalStore]:
    with LocalStore(":memory:") as store:
        yield store


def replica(replicas: str) -> dict[str, Any]:
    pod = owned_by(tf_pod({VRAM_LIMIT: "4Gi", ENABLED_REPLICAS: replicas}))
    pod["spec"]["containers"][0]["resources"] = {"limits": {NATIVE_GPU_RESOURCE: "1"}}
    return pod


def applied(pod: dict[str, Any], decision: Decision) -> Any:
    assert decision.allowed, decision.message
    return json_patch(copy.deepcopy(pod), decision.patch)


def slot_tokens(store: LocalStore) -> set[str]:
    return {token for count in store.list("ConfigMap") for token in count["data"]}


def test_n_replicas_are_converted_each_with_its_slot_and_the_rest_not(
    counts: LocalStore,
) -> None:
    pod = replica("2")
    results = [applied(pod, decide(pod, admission(store=counts))) for _ in range(2)]
    for result in results:
        assert result["spec"]["schedulerName"] == SCHEDULER_NAME
        assert result["metadata"]["labels"][ENABLED_LABEL] == "true"
    assert {result["metadata"]["labels"][REPLICA_SLOT_LABEL] for result in results} == (
        slot_tokens(counts)
    )
    assert len(slot_tokens(counts)) == 2
    over = decide(pod, admission(store=counts))
    assert (over.allowed, over.patch) == (True, [])
    assert over.warnings == (
        f"{ENABLED_REPLICAS}: admitted unconverted "
        "(2 of its controller's replicas are converted already)",
    )


def test_zero_replicas_converts_none() -> None:
    decision = decided(replica("0"))
    assert (decision.allowed, decision.patch) == (True, [])
    assert decision.warnings == (f"{ENABLED_REPLICAS}: admitted unconverted (0)",)


@pytest.mark.parametrize("text", ["three", "-1", "1.5", ""])
def test_a_malformed_replica_count_is_denied_naming_the_annotation(
    text: str, counts: LocalStore
) -> None:
    decision = decide(replica(text), admission(store=counts))
    assert not decision.allowed
    assert decision.message.startswith(f"{ENABLED_REPLICAS}: ")
    assert counts.list("ConfigMap") == []


def test_a_pod_without_a_controller_is_converted_without_a_slot(counts: LocalStore) -> None:
    pod = replica("1")
    del pod["metadata"]["ownerReferences"]
    for _ in range(2):
        result = applied(pod, decide(pod, admission(store=counts)))
        assert result["spec"]["schedulerName"] == SCHEDULER_NAME
        assert REPLICA_SLOT_LABEL not in result["metadata"]["labels"]
    assert counts.list("ConfigMap") == []


def test_a_dry_run_decides_alike_and_takes_no_slot(counts: LocalStore) -> None:
    pod = replica("1")
    dry = decide(pod, admission(store=counts), dry_run=True)
    assert applied(pod, dry)["spec"]["schedulerName"] == SCHEDULER_NAME
    assert counts.list("ConfigMap") == []
    assert applied(pod, decide(pod, admission(store=counts)))["metadata"]["labels"]
    (before,) = counts.list("ConfigMap")
    assert decide(pod, admission(store=counts), dry_run=True).patch == []
    assert counts.list("ConfigMap") == [before]


def test_a_denied_replica_takes_no_slot(counts: LocalStore) -> None:
    pod = replica("1")
    pod["metadata"]["annotations"][GPU_POOL] = "missing"
    assert not decide(pod, admission(store=counts)).allowed
    assert counts.list("ConfigMap") == []


def test_slots_are_counted_in_the_requests_namespace(counts: LocalStore) -> None:
    pod = replica("1")
    del pod["metadata"]["namespace"]
    assert decide(pod, admission(store=counts), namespace="team-a").patch
    (count,) = counts.list("ConfigMap")
    assert count["metadata"]["namespace"] == "team-a"


# --- progressive migration --------------------------------------------------------------

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def native_pod(resources: dict[str, Any], *, enabled: str | None = None) -> dict[str, Any]:
    pod = tf_pod(enabled=enabled)
    pod["spec"]["containers"][0]["resources"] = resources
    return pod


def kept_off(result: dict[str, Any]) -> bool:
    affinity = ((result["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(REQUIRED)
    terms = (affinity or {}).get("nodeSelectorTerms") or []
    return bool(terms) and all(WITHOUT_WORKERS in term["matchExpressions"] for term in terms)


@pytest.mark.parametrize("enabled", [None, "false"])
@pytest.mark.parametrize(
    "resources",
    [
        {"limits": {NATIVE_GPU_RESOURCE: "1"}},
        {"requests": {NATIVE_GPU_RESOURCE: "2"}, "limits": {NATIVE_GPU_RESOURCE: "2"}},
    ],
)
def test_under_migration_a_native_gpu_pod_is_kept_off_tensor_fusion_nodes(
    resources: dict[str, Any], enabled: str | None
) -> None:
    pod = native_pod(resources, enabled=enabled)
    result = applied(pod, decide(pod, admission(migration=True)))
    assert kept_off(result)
    # Only the affinity: not converted, the GPUs kept.
    del result["spec"]["affinity"]
    assert result == pod


def test_a_gpu_in_an_init_container_counts_too() -> None:
    pod = native_pod({})
    pod["spec"]["initContainers"] = [
        {"name": "warm", "image": "cuda", "resources": {"limits": {NATIVE_GPU_RESOURCE: "1"}}}
    ]
    assert kept_off(applied(pod, decide(pod, admission(migration=True))))


@pytest.mark.parametrize(
    "resources", [{}, {"limits": {NATIVE_GPU_RESOURCE: "0"}}, {"limits": {"cpu": "1"}}]
)
def test_under_migration_a_pod_without_gpus_is_unchanged(resources: dict[str, Any]) -> None:
    decision = decide(native_pod(resources), admission(migration=True))
    assert (decision.allowed, decision.patch) == (True, [])


def test_without_migration_a_native_gpu_pod_is_unchanged() -> None:
    decision = decide(native_pod({"limits": {NATIVE_GPU_RESOURCE: "1"}}), admission())
    assert (decision.allowed, decision.patch) == (True, [])


def test_under_migration_a_replica_over_its_count_is_kept_off_and_converted_ones_are_not(
    counts: LocalStore,
) -> None:
    pod = replica("1")
    first = applied(pod, decide(pod, admission(store=counts, migration=True)))
    assert first["spec"]["schedulerName"] == SCHEDULER_NAME
    assert not kept_off(first)
    over = decide(pod, admission(store=counts, migration=True))
    assert over.warnings
    result = applied(pod, over)
    assert kept_off(result)
    assert result["spec"]["containers"] == pod["spec"]["containers"]


def test_under_migration_an_unreadable_enabled_pod_is_still_denied() -> None:
    pod = native_pod({"limits": {NATIVE_GPU_RESOURCE: "1"}}, enabled="true")
    pod["metadata"]["annotations"][VRAM_LIMIT] = "16Gx"
    decision = decide(pod, admission(migration=True))
    assert not decision.allowed
    assert decision.message.startswith(f"{VRAM_LIMIT}: ")
