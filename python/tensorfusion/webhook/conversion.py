"""A TensorFusion pod converted: the pool's own patches, the scheduler's profile, the
annotations as the scheduler will read them, the shim, the used-by toleration, a priority
class by QoS, and no native GPU resource."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    GPU_COUNT,
    GPU_POOL,
    NATIVE_GPU_RESOURCE,
    PREFIX,
    QOS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
    WorkloadRequest,
)
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.webhook.pool_patches import apply_pool_patches
from tensorfusion.webhook.pools import ChosenPool
from tensorfusion.webhook.shim_injection import inject_shim, list_at

USED_BY_TAINT: Final = PREFIX + "used-by"
"""The taint that keeps pods without TensorFusion off the GPU nodes it manages."""
USED_BY_TOLERATION: Final = {"key": USED_BY_TAINT, "operator": "Exists"}
USED_BY_VALUE: Final = "tensor-fusion"
"""The used-by taint's value, and that of the node label of the same key that marks a node
running TensorFusion workers."""
PRIORITY_CLASSES: Final = {
    "low": ("tensor-fusion-low", 0),
    "medium": ("tensor-fusion-medium", 1_000),
    "high": ("tensor-fusion-high", 10_000),
    "critical": ("tensor-fusion-critical", 100_000),
}
"""The PriorityClass of each QoS level, as the chart creates it, and its value. The API server
resolves a pod's priority from its class before webhooks run, so the webhook writes both."""
_PAIRS: Final = (
    (TFLOPS_REQUEST, TFLOPS_LIMIT),
    (VRAM_REQUEST, VRAM_LIMIT),
    (COMPUTE_PERCENT_REQUEST, COMPUTE_PERCENT_LIMIT),
)


def normalised_annotations(
    annotations: Mapping[str, str], workload: WorkloadRequest, gpu_count: int, pool: ChosenPool
) -> dict[str, str]:
    """The annotations with what the reader defaults written out: each of a request/limit
    pair from its partner as written, gpu-count, the pool and the QoS."""
    result = dict(annotations)
    for request, limit in _PAIRS:
        if request in result and limit not in result:
            result[limit] = result[request]
        elif limit in result and request not in result:
            result[request] = result[limit]
    result[GPU_COUNT] = str(gpu_count)
    result[GPU_POOL] = pool.name
    result[QOS] = workload.effective_qos(pool.default_qos)
    return result


def _drop_native_gpus(container: MutableMapping[str, Any]) -> None:
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        amounts = resources.get(part)
        if isinstance(amounts, dict) and NATIVE_GPU_RESOURCE in amounts:
            del amounts[NATIVE_GPU_RESOURCE]


def convert_pod(
    pod: Mapping[str, Any],
    workload: WorkloadRequest,
    *,
    inject: tuple[str, ...],
    gpu_count: int,
    pool: ChosenPool,
    image: str,
) -> dict[str, Any]:
    """A converted copy of `pod`, whose request was read as `workload`; `inject` names the
    containers that get the shim."""
    converted = copy.deepcopy(dict(pod))
    # The pool's patches first: what the conversion itself needs is written over them.
    apply_pool_patches(converted, pool.patches, inject)
    metadata = converted.setdefault("metadata", {})
    annotations = normalised_annotations(
        metadata.get("annotations") or {}, workload, gpu_count, pool
    )
    metadata["annotations"] = annotations
    spec = converted.setdefault("spec", {})
    spec["schedulerName"] = SCHEDULER_NAME
    if not spec.get("priorityClassName"):
        # A class the pod (or the cluster's global default) names stays.
        spec["priorityClassName"], spec["priority"] = PRIORITY_CLASSES[annotations[QOS]]
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        _drop_native_gpus(container)
    tolerations = list_at(spec, "tolerations")
    if USED_BY_TOLERATION not in tolerations:
        tolerations.append(dict(USED_BY_TOLERATION))
    inject_shim(spec, inject, workload, gpu_count, image, spill=pool.pages_to_disk)
    return converted
