"""The one admission decision for a pod: allowed unchanged, allowed with a JSONPatch that
converts it (or, under progressive migration, keeps a native GPU pod off TensorFusion's
nodes), or denied with a message naming the annotation (or resource) at fault."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    ENABLED_REPLICAS,
    GPU_COUNT,
    NATIVE_GPU_RESOURCE,
)
from tensorfusion.api.workload import MAX_GPU_COUNT
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.webhook.conversion import convert_pod
from tensorfusion.webhook.json_patch import JsonPatch, patch_between
from tensorfusion.webhook.native_pods import kept_off_workers
from tensorfusion.webhook.pools import choose_pool
from tensorfusion.webhook.replica_slots import ReplicaSlots


@dataclass(frozen=True)
class Decision:
    allowed: bool
    patch: JsonPatch = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    message: str = ""
    """Why it was denied."""


@dataclass(frozen=True)
class Admission:
    """What a decision reads and writes beyond the pod."""

    pools: Callable[[], Iterable[Mapping[str, Any]]]
    """The cluster's GPUPool objects; listed only for an enabled pod."""
    slots: ReplicaSlots
    """The counts of converted replicas, for pods with enabled-replicas."""
    image: str
    """The image the shim is copied from."""
    progressive_migration: bool = False


def _denied(message: str) -> Decision:
    return Decision(allowed=False, message=message)


def decide(
    pod: Mapping[str, Any],
    admission: Admission,
    *,
    namespace: str | None = None,
    dry_run: bool = False,
) -> Decision:
    """The decision for a Pod CREATE in `namespace` (else the pod's own); a `dry_run` one is
    decided alike but takes no enabled-replicas slot. A pod not labelled enabled "true" is not
    converted. UnavailableError when enabled-replicas cannot be counted; StoreError when the
    pools cannot be listed."""
    info = PodInfo.from_dict(pod)
    if info.labels.get(ENABLED_LABEL) != "true":
        return _native(pod, info, admission)
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
    pool = choose_pool(workload.pool, admission.pools())
    if isinstance(pool, str):
        return _denied(pool)
    # The reader has checked inject-container: without it the pod has at most one container.
    containers = [
        str(container.get("name")) for container in (pod.get("spec") or {}).get("containers") or ()
    ]
    if not containers:
        return _denied("spec.containers: a pod needs a container")
    # Last, once nothing can deny the pod: a slot taken for a denied pod would stay taken.
    limit = workload.enabled_replicas
    labels = (
        {}
        if limit is None
        else admission.slots.claim(pod, namespace or info.namespace, limit, dry_run=dry_run)
    )
    if labels is None:
        why = f"{limit} of its controller's replicas are converted already" if limit else "0"
        native = _native(pod, info, admission)
        warning = f"{ENABLED_REPLICAS}: admitted unconverted ({why})"
        return Decision(allowed=True, patch=native.patch, warnings=(warning,))
    inject = workload.inject_containers or (containers[0],)
    converted = convert_pod(
        pod, workload, inject=inject, gpu_count=gpu_count, pool=pool, image=admission.image
    )
    if labels:
        metadata = converted["metadata"]
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return Decision(allowed=True, patch=patch_between(pod, converted))


def _native(pod: Mapping[str, Any], info: PodInfo, admission: Admission) -> Decision:
    """A pod left unconverted: as it is, but off the nodes of TensorFusion workers when it
    keeps native GPUs under progressive migration."""
    if admission.progressive_migration and info.native_gpus:
        return Decision(allowed=True, patch=patch_between(pod, kept_off_workers(pod)))
    return Decision(allowed=True)
