"""What the scheduler reads from a pod, read once per pod from its raw document.

This is the hot path of every scheduling decision, so it reads plain dicts (no pydantic)
and never raises: malformed parts are collected in `spec_problems` as "field.path: message"
and read as absent, TensorFusion annotation problems in `workload_problems`, and features
the scheduler cannot honour yet in `unsupported`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tensorfusion.api.annotations import (
    ANNOTATION_KEYS,
    ENABLED_LABEL,
    GPU_IDS,
    NATIVE_GPU_RESOURCE,
    WorkloadRequest,
    gpu_ids_of,
    read_workload_request,
)
from tensorfusion.errors import AnnotationError, QuantityError
from tensorfusion.scheduler.plugins.host_ports import HostPort, read_host_ports
from tensorfusion.scheduler.plugins.node_selection import (
    NodeSelectorTerm,
    PreferredTerm,
    read_preferred,
    read_required,
)
from tensorfusion.scheduler.plugins.resource_amounts import (
    CPU,
    MEMORY,
    container_resource_problem,
    is_extended,
    resource_amount,
)
from tensorfusion.scheduler.plugins.spec_reader import SpecReader
from tensorfusion.scheduler.plugins.taints import Toleration, read_tolerations
from tensorfusion.scheduler.pod_keys import DEMAND_ANNOTATIONS, pod_key

DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_CPU_REQUEST = 100
"""Millicores kube scores a container with when it requests no cpu."""
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
"""Bytes kube scores a container with when it requests no memory."""
_NON_ZERO_DEFAULTS = {CPU: DEFAULT_CPU_REQUEST, MEMORY: DEFAULT_MEMORY_REQUEST}
_INT32 = 2**31
_NODE_AFFINITY = "spec.affinity.nodeAffinity"
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
_REQUIRED_PATH = f"{_NODE_AFFINITY}.{_REQUIRED}"
_PREFERRED_PATH = f"{_NODE_AFFINITY}.{_PREFERRED}"
_READ_KEYS = frozenset(ANNOTATION_KEYS)
"""The annotations `read_workload_request` reads (the contract's keys: it reads no other)."""
_SHARED_KEYS = _READ_KEYS - {GPU_IDS}
"""Those of them replicas of one controller share: every bound pod holds GPUs of its own."""


@dataclass(frozen=True, slots=True)
class UnsupportedFeature:
    """A part of the pod this scheduler cannot honour yet, and where it is."""

    feature: str
    path: str


@dataclass(frozen=True, slots=True, eq=False)
class PodInfo:
    namespace: str
    name: str
    uid: str
    """The pod's UID, or namespace/name when it has none (as the allocator keys pods)."""
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    priority: int
    scheduler_name: str
    node_name: str | None
    node_selector: Mapping[str, str]
    required_terms: tuple[NodeSelectorTerm, ...] | None
    """Required node affinity, ORed; None when the pod has none."""
    preferred_terms: tuple[PreferredTerm, ...]
    tolerations: tuple[Toleration, ...]
    host_ports: tuple[HostPort, ...]
    requests: Mapping[str, int]
    """Per resource, as kube sums a pod: max(containers' sum, each init container's need)
    plus overhead; cpu in millicores, memory and storage in bytes, others in units."""
    non_zero_requests: Mapping[str, int]
    """cpu and memory as kube scores them: a container requesting none counts 100m / 200Mi."""
    native_gpus: int
    workload: WorkloadRequest | None
    workload_problems: tuple[AnnotationError, ...]
    spec_problems: tuple[str, ...]
    unsupported: tuple[UnsupportedFeature, ...]

    @classmethod
    def from_dict(cls, pod: Mapping[str, Any]) -> PodInfo:
        reader = SpecReader()
        pod = reader.mapping(pod, "pod")
        metadata = reader.mapping(pod.get("metadata"), "metadata")
        spec = reader.mapping(pod.get("spec"), "spec")
        namespace = reader.text(metadata.get("namespace"), "metadata.namespace") or "default"
        name = reader.text(metadata.get("name"), "metadata.name")
        uid = reader.text(metadata.get("uid"), "metadata.uid")
        labels = reader.strings(metadata.get("labels"), "metadata.labels")
        annotations = reader.strings(metadata.get("annotations"), "metadata.annotations")
        containers = _containers(reader, spec, "containers")
        init_containers = _containers(reader, spec, "initContainers")
        requests, non_zero = _pod_requests(reader, spec, containers, init_containers)
        affinity = reader.mapping(spec.get("affinity"), "spec.affinity")
        node_affinity = reader.mapping(affinity.get("nodeAffinity"), _NODE_AFFINITY)
        workload, workload_problems = _workload(labels, annotations, containers)
        return cls(
            namespace=namespace,
            name=name,
            uid=pod_key({"namespace": namespace, "name": name, "uid": uid})[0],
            labels=labels,
            annotations=annotations,
            priority=reader.integer(spec.get("priority"), "spec.priority", -_INT32, _INT32 - 1)
            or 0,
            scheduler_name=reader.text(spec.get("schedulerName"), "spec.schedulerName")
            or DEFAULT_SCHEDULER,
            node_name=reader.text(spec.get("nodeName"), "spec.nodeName") or None,
            node_selector=reader.strings(spec.get("nodeSelector"), "spec.nodeSelector"),
            required_terms=read_required(reader, node_affinity.get(_REQUIRED), _REQUIRED_PATH),
            preferred_terms=read_preferred(reader, node_affinity.get(_PREFERRED), _PREFERRED_PATH),
            tolerations=read_tolerations(reader, spec.get("tolerations"), "spec.tolerations"),
            host_ports=tuple(
                port
                for container in (*init_containers, *containers)
                if container.runs_throughout
                for port in read_host_ports(reader, container.body, container.path)
            ),
            requests=requests,
            non_zero_requests=non_zero,
            native_gpus=requests.get(NATIVE_GPU_RESOURCE, 0),
            workload=workload,
            workload_problems=workload_problems,
            unsupported=_unsupported(reader, spec, affinity),
            # Last: every read above may add a problem.
            spec_problems=tuple(reader.problems),
        )


class _Container(NamedTuple):
    body: Mapping[str, Any]
    path: str
    runs_throughout: bool
    """A regular container, or a sidecar (an init container with restartPolicy Always);
    False for an init container that runs to completion before the others start."""


def _containers(reader: SpecReader, spec: Mapping[str, Any], field: str) -> list[_Container]:
    containers: list[_Container] = []
    for index, item in enumerate(reader.items(spec.get(field), f"spec.{field}")):
        path = f"spec.{field}[{index}]"
        body = reader.mapping(item, path)
        runs_throughout = field == "containers" or body.get("restartPolicy") == "Always"
        containers.append(_Container(body, path, runs_throughout))
    return containers


def _pod_requests(
    reader: SpecReader,
    spec: Mapping[str, Any],
    containers: Sequence[_Container],
    init_containers: Sequence[_Container],
) -> tuple[dict[str, int], dict[str, int]]:
    """The pod's requests as requested, and with kube's non-zero defaults (cpu and memory)."""
    regular = [_container_requests(reader, item.body, item.path) for item in containers]
    inits = [
        (_container_requests(reader, item.body, item.path), item.runs_throughout)
        for item in init_containers
    ]
    overhead = _amounts(
        reader, reader.mapping(spec.get("overhead"), "spec.overhead"), "spec.overhead"
    )
    requests = _combine(regular, inits, overhead)
    non_zero = _combine(
        [_non_zero(amounts) for amounts in regular],
        [(_non_zero(amounts), sidecar) for amounts, sidecar in inits],
        {name: overhead.get(name, 0) for name in _NON_ZERO_DEFAULTS},
    )
    return requests, non_zero


def _combine(
    regular: Iterable[Mapping[str, int]],
    inits: Iterable[tuple[Mapping[str, int], bool]],
    overhead: Mapping[str, int],
) -> dict[str, int]:
    """kube's PodRequests: containers and sidecars add up; a regular init container runs
    alone beside the sidecars started before it, so the pod needs the larger of the two;
    overhead comes on top."""
    total: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for amounts in regular:
        _add(total, amounts)
    for amounts, sidecar in inits:
        if sidecar:
            _add(total, amounts)
            _add(sidecars, amounts)
            _max(init_peak, sidecars)
        else:
            _max(init_peak, _added(amounts, sidecars))
    _max(total, init_peak)
    _add(total, overhead)
    return total


def _container_requests(
    reader: SpecReader, container: Mapping[str, Any], path: str
) -> dict[str, int]:
    """A container's requests, a missing one defaulting to its limit (as the API server
    fills it in on create)."""
    resources = reader.mapping(container.get("resources"), f"{path}.resources")
    requests_path, limits_path = f"{path}.resources.requests", f"{path}.resources.limits"
    requests = reader.mapping(resources.get("requests"), requests_path)
    limits = reader.mapping(resources.get("limits"), limits_path)
    limit_amounts = _amounts(reader, limits, limits_path)
    amounts = _amounts(reader, requests, requests_path)
    for name, amount in amounts.items():
        limit = limit_amounts.get(name)
        if limit is not None and amount > limit:
            reader.fail(f"{requests_path}.{name}", f"must not exceed the limit ({limits[name]})")
    return {**limit_amounts, **amounts}


def _amounts(reader: SpecReader, resources: Mapping[str, Any], path: str) -> dict[str, int]:
    amounts: dict[str, int] = {}
    for name, value in resources.items():
        at = f"{path}.{name}"
        problem = container_resource_problem(name) if isinstance(name, str) else "not a name"
        if problem is not None:
            reader.fail(at, problem)
            continue
        try:
            amount, whole = resource_amount(name, value)
        except QuantityError as exc:
            reader.fail(at, str(exc))
            continue
        if not whole and is_extended(name):
            reader.fail(at, f"must be a whole number for an extended resource, got {value!r}")
            continue
        amounts[name] = amount
    return amounts


def _non_zero(amounts: Mapping[str, int]) -> dict[str, int]:
    return {name: amounts.get(name, default) for name, default in _NON_ZERO_DEFAULTS.items()}


def _add(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, 0) + amount


def _added(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    result = dict(first)
    _add(result, second)
    return result


def _max(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, amount in amounts.items():
        if amount > into.get(name, 0):
            into[name] = amount


def _workload(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    containers: Iterable[_Container],
) -> tuple[WorkloadRequest | None, tuple[AnnotationError, ...]]:
    """The TensorFusion request of a pod that is enabled or states a GPU demand."""
    enabled = labels.get(ENABLED_LABEL)
    if enabled != "true" and not any(key in annotations for key in DEMAND_ANNOTATIONS):
        return None, ()
    names = tuple(
        name for container in containers if isinstance(name := container.body.get("name"), str)
    )
    gpu_ids = annotations.get(GPU_IDS)
    held = gpu_ids_of(annotations)
    if gpu_ids is not None and len(held) != gpu_ids.count(",") + 1:
        # An item was skipped as empty: a malformed gpu-ids, which the whole read reports.
        return _read_workload(enabled, _read_keys(annotations, _READ_KEYS), names)
    request, problems = _read_workload(enabled, _read_keys(annotations, _SHARED_KEYS), names)
    if request is None or not held:
        return request, problems
    return dataclasses.replace(request, gpu_ids=held), problems


def _read_keys(
    annotations: Mapping[str, str], keys: Collection[str]
) -> tuple[tuple[str, str], ...]:
    """The pod's annotations among `keys` (the only ones the workload read looks at)."""
    return tuple(item for item in annotations.items() if item[0] in keys)


@functools.lru_cache(maxsize=1024)
def _read_workload(
    enabled: str | None, annotations: tuple[tuple[str, str], ...], containers: tuple[str, ...]
) -> tuple[WorkloadRequest | None, tuple[AnnotationError, ...]]:
    # Replicas of one controller carry the same annotations: read them once (the exact
    # quantity parsing is what makes a fresh read cost tens of microseconds).
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    request, problems = read_workload_request(labels, dict(annotations), containers)
    return request, tuple(problems)


def _unsupported(
    reader: SpecReader, spec: Mapping[str, Any], affinity: Mapping[str, Any]
) -> tuple[UnsupportedFeature, ...]:
    found = []
    for kind in ("podAffinity", "podAntiAffinity"):
        if _has_terms(reader.mapping(affinity.get(kind), f"spec.affinity.{kind}")):
            found.append(UnsupportedFeature(kind, f"spec.affinity.{kind}"))
    if reader.items(spec.get("topologySpreadConstraints"), "spec.topologySpreadConstraints"):
        found.append(
            UnsupportedFeature("topologySpreadConstraints", "spec.topologySpreadConstraints")
        )
    for index, item in enumerate(reader.items(spec.get("volumes"), "spec.volumes")):
        volume = reader.mapping(item, f"spec.volumes[{index}]")
        for source in ("persistentVolumeClaim", "ephemeral"):
            if volume.get(source) is not None:
                found.append(
                    UnsupportedFeature(
                        "persistentVolumeClaim volumes", f"spec.volumes[{index}].{source}"
                    )
                )
    return tuple(found)


def _has_terms(pod_affinity: Mapping[str, Any]) -> bool:
    return bool(pod_affinity.get(_REQUIRED) or pod_affinity.get(_PREFERRED))
