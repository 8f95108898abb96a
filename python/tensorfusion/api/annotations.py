"""The pod contract: the `tensor-fusion.ai/` label and annotations a workload carries, and
their reading into a typed WorkloadRequest. Every key appears here once, as a constant."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from typing import TypeVar

from tensorfusion.api.common import QOS_LEVELS, QoSLevel
from tensorfusion.api.duration import parse_duration
from tensorfusion.api.names import dns_label_problem, is_decimal
from tensorfusion.api.quantity import Quantity
from tensorfusion.api.workload import MAX_GPU_COUNT
from tensorfusion.errors import AnnotationError, QuantityError

PREFIX = "tensor-fusion.ai/"
ENABLED_LABEL = PREFIX + "enabled"
TFLOPS_REQUEST = PREFIX + "tflops-request"
TFLOPS_LIMIT = PREFIX + "tflops-limit"
VRAM_REQUEST = PREFIX + "vram-request"
VRAM_LIMIT = PREFIX + "vram-limit"
COMPUTE_PERCENT_REQUEST = PREFIX + "compute-percent-request"
COMPUTE_PERCENT_LIMIT = PREFIX + "compute-percent-limit"
GPU_COUNT = PREFIX + "gpu-count"
GPU_POOL = PREFIX + "gpupool"
QOS = PREFIX + "qos"
GPU_MODEL = PREFIX + "gpu-model"
IS_LOCAL_GPU = PREFIX + "is-local-gpu"
WORKLOAD_PROFILE = PREFIX + "workload-profile"
ENABLED_REPLICAS = PREFIX + "enabled-replicas"
INJECT_CONTAINER = PREFIX + "inject-container"
DISABLE_FEATURES = PREFIX + "disable-features"
GPU_IDS = PREFIX + "gpu-ids"
"""Written by the scheduler after binding: comma-separated GPU names."""
GPU_INDICES = PREFIX + "gpu-indices"
"""Written by the scheduler with gpu-ids: the same GPUs' device indices on their node, in PCI
bus order, as the NVIDIA container runtime takes them (NVIDIA_VISIBLE_DEVICES)."""
WORKER_PIDS = PREFIX + "worker-pids"
"""Embedded mode: the local processes of a worker, `pid@start` comma-separated (the start
token tells a live process from a later one reusing its pid); the agent releases the worker
once none of them, and none of its shared regions' members, is alive."""
WORKER_COMMAND = PREFIX + "worker-command"
"""Embedded mode: the worker's command line as a JSON list, for listings."""
GANG_MIN_MEMBERS = PREFIX + "gang-min-members"
"""Upstream's gang scheduling: how many pods of the workload must be placeable together
before any of them is bound (0: all replicas)."""
GANG_TIMEOUT = PREFIX + "gang-timeout"
"""Upstream's gang scheduling: how long members wait for their peers ("5m"; 0: forever)."""
MAX_GANG_MEMBERS = 2**31 - 1

ANNOTATION_KEYS = (
    TFLOPS_REQUEST,
    TFLOPS_LIMIT,
    VRAM_REQUEST,
    VRAM_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    COMPUTE_PERCENT_LIMIT,
    GPU_COUNT,
    GPU_POOL,
    QOS,
    GPU_MODEL,
    IS_LOCAL_GPU,
    WORKLOAD_PROFILE,
    ENABLED_REPLICAS,
    INJECT_CONTAINER,
    DISABLE_FEATURES,
    GPU_IDS,
)
GANG_ANNOTATION_KEYS = (GANG_MIN_MEMBERS, GANG_TIMEOUT)
"""Upstream's, beyond COMPAT.md: a pod carrying one asks to be scheduled with its peers."""
EMBEDDED_ANNOTATION_KEYS = (WORKER_PIDS, WORKER_COMMAND)
"""Ours alone (not upstream's): what embedded mode records on the pods of local workers."""
WORKER_LABEL = PREFIX + "embedded-worker"
"""Embedded mode: "true" on the pods of local workers, so they are listed without reading
every pod of the cluster."""
REPLICA_SLOT_LABEL = PREFIX + "replica-slot"
"""Ours alone: on a replica converted under enabled-replicas, the token of the slot it holds
in its controller's count, so that the webhook can tell held slots from those of pods gone."""
NATIVE_GPU_RESOURCE = "nvidia.com/gpu"


def gpu_ids_of(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The GPU names a bound pod holds (its gpu-ids annotation; empty items skipped)."""
    value = annotations.get(GPU_IDS) or ""
    return tuple(item for item in (part.strip() for part in value.split(",")) if item)


@dataclass(frozen=True)
class WorkloadRequest:
    """What a pod asks of the GPU pool. Unset fields fall back to the workload profile or the
    pool's defaults, which later stages apply."""

    enabled: bool
    tflops_request: Quantity | None = None
    tflops_limit: Quantity | None = None
    vram_request: int | None = None
    vram_limit: int | None = None
    compute_percent_request: Fraction | None = None
    compute_percent_limit: Fraction | None = None
    gpu_count: int = 1
    pool: str | None = None
    qos: QoSLevel | None = None
    gpu_model: str | None = None
    is_local_gpu: bool | None = None
    workload_profile: str | None = None
    enabled_replicas: int | None = None
    inject_containers: tuple[str, ...] = ()
    disabled_features: frozenset[str] = frozenset()
    gpu_ids: tuple[str, ...] = ()

    def effective_qos(self, pool_default: QoSLevel | None = None) -> QoSLevel:
        """The explicit QoS; else `high` when request == limit for both TFLOPS and VRAM;
        else the pool's default; else `medium`."""
        if self.qos is not None:
            return self.qos
        guaranteed = (
            self.tflops_limit is not None
            and self.vram_limit is not None
            and self.tflops_request == self.tflops_limit
            and self.vram_request == self.vram_limit
        )
        if guaranteed:
            return "high"
        return pool_default or "medium"


_Amount = TypeVar("_Amount", Quantity, int, Fraction)


@dataclass
class _Reader:
    """Reads one pod's annotations, collecting every problem instead of stopping at the first."""

    annotations: Mapping[str, str]
    problems: list[AnnotationError] = field(default_factory=list)

    def fail(self, key: str, message: str) -> None:
        self.problems.append(AnnotationError(key, message))

    def text(self, key: str) -> str | None:
        value = self.annotations.get(key)
        if value is not None and not value.strip():
            self.fail(key, "must not be empty")
            return None
        return value

    def quantity(self, key: str) -> Quantity | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            quantity = Quantity.parse(value)
        except QuantityError as exc:
            self.fail(key, str(exc))
            return None
        if quantity.is_negative:
            self.fail(key, f"must not be negative (got {value!r})")
            return None
        return quantity

    def bytes(self, key: str) -> int | None:
        quantity = self.quantity(key)
        if quantity is None:
            return None
        if quantity.exact.denominator != 1:
            self.fail(key, f"must be a whole number of bytes (got {quantity.text!r})")
            return None
        return quantity.value()

    def integer(self, key: str, low: int, high: int | None) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        if not is_decimal(value):
            self.fail(key, f"must be a whole number, got {value!r}")
            return None
        number = int(value)
        if number < low or (high is not None and number > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            self.fail(key, f"must be {bound}, got {number}")
            return None
        return number

    def percent(self, key: str) -> Fraction | None:
        value = self.text(key)
        if value is None:
            return None
        whole, _, fraction = value.partition(".")
        number = (
            Fraction(value)
            if is_decimal(whole) and (not fraction or is_decimal(fraction))
            else None
        )
        if number is None or not 0 < number <= 100:
            self.fail(key, f"must be a number of percent in (0, 100], got {value!r}")
            return None
        return number

    def duration(self, key: str) -> timedelta | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return None

    def boolean(self, key: str) -> bool | None:
        value = self.text(key)
        if value is None:
            return None
        if value not in ("true", "false"):
            self.fail(key, f'must be "true" or "false", got {value!r}')
            return None
        return value == "true"

    def names(self, key: str) -> tuple[str, ...]:
        value = self.text(key)
        if value is None:
            return ()
        items = tuple(item.strip() for item in value.split(","))
        if any(not item for item in items):
            self.fail(key, f"must be a comma-separated list without empty items, got {value!r}")
        return tuple(item for item in items if item)

    def pair(
        self, request_key: str, limit_key: str, request: _Amount | None, limit: _Amount | None
    ) -> tuple[_Amount | None, _Amount | None]:
        """A request defaults to its limit and a limit to its request; the limit must be > 0
        and not below the request."""
        if request is None:
            request = limit
        if limit is None:
            limit = request
        if limit is not None and limit == type(limit)(0):
            # Also when the zero comes from a lone request: a slice of nothing cannot run.
            self.fail(
                limit_key if limit_key in self.annotations else request_key,
                "the limit must be greater than 0",
            )
        elif request is not None and limit is not None and limit < request:
            # Both were given (a default equals its partner), so quote them as written.
            short = request_key.removeprefix(PREFIX)
            written = f"{self.annotations[limit_key]} < {self.annotations[request_key]}"
            self.fail(limit_key, f"must be >= {short} ({written})")
        return request, limit


def read_workload_request(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    container_names: Sequence[str] | None = None,
) -> tuple[WorkloadRequest | None, list[AnnotationError]]:
    """Read a pod's (or pod template's) label and annotations.

    Returns the request (None when there were errors) and the problems found, each naming
    its annotation key. `container_names`, when given, lets inject-container be checked."""
    reader = _Reader(annotations)
    enabled_value = labels.get(ENABLED_LABEL)
    if enabled_value not in (None, "true", "false"):
        reader.fail(ENABLED_LABEL, f'label must be "true" or "false", got {enabled_value!r}')
    tflops = reader.pair(
        TFLOPS_REQUEST,
        TFLOPS_LIMIT,
        reader.quantity(TFLOPS_REQUEST),
        reader.quantity(TFLOPS_LIMIT),
    )
    vram = reader.pair(
        VRAM_REQUEST, VRAM_LIMIT, reader.bytes(VRAM_REQUEST), reader.bytes(VRAM_LIMIT)
    )
    percent = reader.pair(
        COMPUTE_PERCENT_REQUEST,
        COMPUTE_PERCENT_LIMIT,
        reader.percent(COMPUTE_PERCENT_REQUEST),
        reader.percent(COMPUTE_PERCENT_LIMIT),
    )
    qos = reader.text(QOS)
    if qos is not None and qos not in QOS_LEVELS:
        reader.fail(QOS, f"must be one of {', '.join(QOS_LEVELS)}, got {qos!r}")
    pool = reader.text(GPU_POOL)
    if pool is not None and (problem := dns_label_problem(pool)):
        reader.fail(GPU_POOL, problem)
    inject = reader.names(INJECT_CONTAINER)
    _check_inject(reader, inject, container_names, enabled_value == "true")
    request = WorkloadRequest(
        enabled=enabled_value == "true",
        tflops_request=tflops[0],
        tflops_limit=tflops[1],
        vram_request=vram[0],
        vram_limit=vram[1],
        # TFLOPS win when both are given: the percentages are then dropped.
        compute_percent_request=percent[0] if tflops[1] is None else None,
        compute_percent_limit=percent[1] if tflops[1] is None else None,
        gpu_count=reader.integer(GPU_COUNT, 1, MAX_GPU_COUNT) or 1,
        pool=pool,
        qos=qos if qos in QOS_LEVELS else None,
        gpu_model=reader.text(GPU_MODEL),
        is_local_gpu=reader.boolean(IS_LOCAL_GPU),
        workload_profile=reader.text(WORKLOAD_PROFILE),
        enabled_replicas=reader.integer(ENABLED_REPLICAS, 0, None),
        inject_containers=inject,
        disabled_features=frozenset(reader.names(DISABLE_FEATURES)),
        gpu_ids=reader.names(GPU_IDS),
    )
    return (None if reader.problems else request), reader.problems


def _check_inject(
    reader: _Reader, inject: tuple[str, ...], containers: Sequence[str] | None, enabled: bool
) -> None:
    if containers is None:
        return
    for name in inject:
        if name not in containers:
            reader.fail(
                INJECT_CONTAINER,
                f"names container {name!r}, which the pod does not have "
                f"(containers: {', '.join(containers)})",
            )
    if enabled and not inject and len(containers) > 1:
        reader.fail(
            INJECT_CONTAINER,
            f"required when the pod has several containers ({', '.join(containers)}): "
            "name the one(s) that use the GPU",
        )


def parse_workload_request(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    container_names: Sequence[str] | None = None,
) -> WorkloadRequest:
    """Like read_workload_request, but raises the first AnnotationError."""
    request, problems = read_workload_request(labels, annotations, container_names)
    if problems:
        raise problems[0]
    assert request is not None
    return request


@dataclass(frozen=True)
class GangRequest:
    """What a pod's gang annotations ask: to be bound only together with its peers."""

    min_members: int | None = None
    timeout: timedelta | None = None
    """None: wait for the peers as long as it takes (also when written as 0)."""


def read_gang_request(
    annotations: Mapping[str, str],
) -> tuple[GangRequest | None, list[AnnotationError]]:
    """The gang a pod asks to be scheduled with: None (and no problem) when it carries no
    gang annotation; None with the problems, each naming its key, when one is malformed."""
    if not any(key in annotations for key in GANG_ANNOTATION_KEYS):
        return None, []
    reader = _Reader(annotations)
    min_members = reader.integer(GANG_MIN_MEMBERS, 0, MAX_GANG_MEMBERS)
    timeout = reader.duration(GANG_TIMEOUT)
    if reader.problems:
        return None, reader.problems
    return GangRequest(min_members, timeout or None), []


def unknown_annotation_keys(annotations: Mapping[str, str]) -> list[tuple[str, str]]:
    """Our-prefixed keys that are not part of the contract, each with a hint for the fix."""
    unknown = []
    known = ANNOTATION_KEYS + GANG_ANNOTATION_KEYS + EMBEDDED_ANNOTATION_KEYS
    for key in annotations:
        if key == ENABLED_LABEL:
            unknown.append((key, "it is a label, not an annotation: move it to labels"))
        elif key.startswith(PREFIX) and key not in known:
            close = difflib.get_close_matches(key, ANNOTATION_KEYS + GANG_ANNOTATION_KEYS, n=1)
            unknown.append((key, f"did you mean {close[0]!r}?" if close else "not a known key"))
    return unknown
