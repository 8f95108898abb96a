"""A pool's patchToPod and patchToContainer reach the pods it takes, merged as a strategic
merge patch merges them, under what the conversion itself needs; a patch that is not an object
is refused naming the pool and the field. And each QoS level brings its priority class."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.api.annotations import QOS
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.webhook.conversion import PRIORITY_CLASSES
from tensorfusion.webhook.pool_patches import merged_into

from .pods import container, converted, decided, pool, tf_pod


def patched_pool(client: dict[str, Any]) -> dict[str, Any]:
    obj = pool("shared", default=True)
    obj["spec"] = {"componentConfig": {"client": client}}
    return obj


def test_patch_to_pod_and_to_container_are_merged() -> None:
    pools = [
        patched_pool(
            {
                "patchToPod": {
                    "metadata": {"labels": {"team": "vision"}},
                    "spec": {
                        "nodeSelector": {"gpu": "h100"},
                        "schedulerName": "default-scheduler",  # the conversion's wins
                    },
                },
                "patchToContainer": {
                    "env": [{"name": "NCCL_DEBUG", "value": "INFO"}],
                    "resources": {"limits": {"cpu": "4"}},
                },
            }
        )
    ]
    pod = tf_pod(containers=("main", "sidecar"))
    pod["metadata"]["annotations"]["tensor-fusion.ai/inject-container"] = "main"
    pod["spec"]["containers"][0]["env"] = [{"name": "NCCL_DEBUG", "value": "WARN"}]
    result = converted(pod, pools)
    assert result["metadata"]["labels"]["team"] == "vision"
    assert result["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert result["spec"]["schedulerName"] == SCHEDULER_NAME
    main = container(result, "main")
    env = {item["name"]: item.get("value") for item in main["env"]}
    assert env["NCCL_DEBUG"] == "INFO"  # merged by name, not appended twice
    assert [item["name"] for item in main["env"]].count("NCCL_DEBUG") == 1
    assert "LD_PRELOAD" in env
    assert main["resources"]["limits"] == {"cpu": "4"}
    assert "resources" not in container(result, "sidecar")
    assert "env" not in container(result, "sidecar")


def test_converting_a_converted_pod_with_patches_changes_nothing() -> None:
    pools = [patched_pool({"patchToContainer": {"env": [{"name": "A", "value": "1"}]}})]
    once = converted(tf_pod(), pools)
    assert converted(once, pools) == once


@pytest.mark.parametrize("field", ["patchToPod", "patchToContainer"])
def test_a_patch_that_is_not_an_object_is_refused_naming_it(field: str) -> None:
    decision = decided(tf_pod(), [patched_pool({field: ["not", "an", "object"]})])
    assert not decision.allowed
    assert f"GPUPool/shared spec.componentConfig.client.{field}" in decision.message


def test_merge_removes_on_null_replaces_plain_lists_and_leaves_its_inputs() -> None:
    target = {"a": {"b": 1, "c": 2}, "args": ["x"], "keep": True}
    patch = {"a": {"c": None, "d": 3}, "args": ["y", "z"]}
    assert merged_into(target, patch) == {"a": {"b": 1, "d": 3}, "args": ["y", "z"], "keep": True}
    assert target == {"a": {"b": 1, "c": 2}, "args": ["x"], "keep": True}


@pytest.mark.parametrize("qos", ["low", "medium", "high", "critical"])
def test_each_qos_gets_its_priority_class_and_value(qos: str) -> None:
    spec = converted(tf_pod({"tensor-fusion.ai/tflops-limit": "10", QOS: qos}))["spec"]
    assert (spec["priorityClassName"], spec["priority"]) == PRIORITY_CLASSES[qos]


def test_a_priority_class_the_pod_names_stays() -> None:
    pod = tf_pod()
    pod["spec"]["priorityClassName"] = "batch"
    pod["spec"]["priority"] = 5
    spec = converted(pod)["spec"]
    assert (spec["priorityClassName"], spec["priority"]) == ("batch", 5)
