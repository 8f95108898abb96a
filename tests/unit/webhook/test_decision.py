"""The pod webhook's decision: which pods it converts, into what, and which it refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tensorfusion.api.annotations import (
    GPU_COUNT,
    GPU_POOL,
    INJECT_CONTAINER,
    NATIVE_GPU_RESOURCE,
    QOS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.webhook.conversion import USED_BY_TOLERATION
from tensorfusion.webhook.shim_injection import (
    INIT_CONTAINER,
    REGIONS_VOLUME,
    SHIM_PATH,
    SHIM_VOLUME,
)

from .pods import IMAGE, container, converted, decided, pool, tf_pod

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
    assert mounts[REGIONS_VOLUME]["subPathExpr"] == "$(POD_NAMESPACE).$(POD_NAME)"
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
