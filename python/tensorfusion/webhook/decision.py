"""The one admission decision for a pod: allowed unchanged, allowed with a JSONPatch that
converts it, or denied with a message naming the annotation (or resource) at fault."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.api.annotations import ENABLED_LABEL, GPU_COUNT, NATIVE_GPU_RESOURCE
from tensorfusion.api.workload import MAX_GPU_COUNT
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.webhook.conversion import convert_pod
from tensorfusion.webhook.json_patch import JsonPatch, patch_between
from tensorfusion.webhook.pools import choose_pool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    patch: JsonPatch = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    message: str = ""
    """Why it was denied."""


def _denied(message: str) -> Decision:
    return Decision(allowed=False, message=message)


def decide(
    pod: Mapping[str, Any], pools: Callable[[], Iterable[Mapping[str, Any]]], image: str
) -> Decision:
    """The decision for a Pod CREATE. `pools` lists the cluster's GPUPool objects (called
    only for a pod that is converted); `image` is the one the shim is copied from. A pod not
    labelled enabled "true" is not ours."""
    info = PodInfo.from_dict(pod)
    if info.labels.get(ENABLED_LABEL) != "true":
        return Decision(allowed=True)
    # The scheduler refuses a pod it cannot read, so admission does, naming the same parts.
    problems = [*(str(problem) for problem in info.workload_problems), *info.spec_problems]
    if problems:
        return _denied("; ".join(problems))
    workload = info.workload
    assert workload is not None  # read whenever the pod is enabled
    gpu_count = workload.gpu_count
    if GPU_COUNT not in info.annotations and info.native_gpus:
        if info.native_gpus > MAX_GPU_COUNT:
            return _denied(
                f"{NATIVE_GPU_RESOURCE}: {info.native_gpus} GPUs, more than the "
                f"{MAX_GPU_COUNT} a pod may hold; set {GPU_COUNT}"
            )
        gpu_count = info.native_gpus
    pool = choose_pool(workload.pool, pools())
    if isinstance(pool, str):
        return _denied(pool)
    # The reader has checked inject-container: without it the pod has at most one container.
    containers = [
        str(container.get("name")) for container in (pod.get("spec") or {}).get("containers") or ()
    ]
    if not containers:
        return _denied("spec.containers: a pod needs a container")
    inject = workload.inject_containers or (containers[0],)
    converted = convert_pod(
        pod, workload, inject=inject, gpu_count=gpu_count, pool=pool, image=image
    )
    return Decision(allowed=True, patch=patch_between(pod, converted))
