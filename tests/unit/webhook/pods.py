"""Pods, pools and a kubelet's reading of a container's environment, for the webhook's tests."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from tensorfusion.api.annotations import ENABLED_LABEL
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION
from tensorfusion.webhook.decision import Decision, decide
from tests.kube.patches import json_patch

IMAGE = "registry.example/tensor-fusion:1.2.3"
_FIELD = re.compile(r"metadata\.annotations\['(?P<key>[^']+)'\]")
_REFERENCE = re.compile(r"\$\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)")


def pool(name: str, *, default: bool = False, default_qos: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool"}
    obj["metadata"] = {"name": name}
    if default:
        obj["metadata"]["annotations"] = {DEFAULT_POOL_ANNOTATION: "true"}
    if default_qos is not None:
        obj["spec"] = {"qosConfig": {"defaultQoS": default_qos}}
    return obj


POOLS = [pool("shared", default=True), pool("training")]


def tf_pod(
    annotations: Mapping[str, str] | None = None,
    *,
    containers: tuple[str, ...] = ("main",),
    enabled: str | None = "true",
) -> dict[str, Any]:
    """A pod with TFLOPS 100 and VRAM 16Gi limits unless `annotations` say otherwise."""
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    given = (
        {"tensor-fusion.ai/tflops-limit": "100", "tensor-fusion.ai/vram-limit": "16Gi"}
        if annotations is None
        else dict(annotations)
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": labels, "annotations": given},
        "spec": {"containers": [{"name": name, "image": "cuda"} for name in containers]},
    }


def decided(pod: Mapping[str, Any], pools: list[dict[str, Any]] | None = None) -> Decision:
    return decide(pod, lambda: POOLS if pools is None else pools, IMAGE)


def converted(pod: Mapping[str, Any], pools: list[dict[str, Any]] | None = None) -> Any:
    """`pod` with the webhook's patch applied, as the API server applies it."""
    decision = decided(pod, pools)
    assert decision.allowed, decision.message
    return json_patch(copy.deepcopy(pod), decision.patch)


def container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def resolved_env(pod: Mapping[str, Any], name: str) -> dict[str, str]:
    """A container's environment as the kubelet resolves it once the pod is stored and bound:
    fieldRefs read from the pod, `$(NAME)` expanded from the variables listed before."""
    env: dict[str, str] = {}
    metadata = pod["metadata"]
    for item in container(pod, name).get("env") or ():
        if "valueFrom" in item:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            annotation = _FIELD.fullmatch(path)
            if annotation is not None:
                value = metadata.get("annotations", {}).get(annotation["key"], "")
            else:
                value = metadata.get(path.removeprefix("metadata."), "")
        else:
            value = expanded(item["value"], env)
        env[item["name"]] = value
    return env


def expanded(text: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` replaced from `env`; an unknown reference stays as written, as in kube."""
    return _REFERENCE.sub(lambda m: env.get(m["name"], m[0]), text)
