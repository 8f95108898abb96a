"""Workers of the embedded control plane: a request for a GPU slice by local processes
(`tensor-fusion run`) becomes a Pod in the store, carrying the same annotations a Kubernetes
workload would, so the scheduler, allocator and agent treat both alike."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from pathlib import PurePath
from typing import Any

from tensorfusion.agent.processes import parse_pids
from tensorfusion.api import annotations as keys
from tensorfusion.api.names import dns_label_problem
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.errors import AnnotationError, ConfigError
from tensorfusion.server.backend import WorkerRequest

WORKER_NAMESPACE = "default"
_FIELD_OF_KEY = {
    keys.TFLOPS_REQUEST: "tflopsRequest",
    keys.TFLOPS_LIMIT: "tflopsLimit",
    keys.VRAM_REQUEST: "vramRequest",
    keys.VRAM_LIMIT: "vramLimit",
    keys.GPU_COUNT: "gpuCount",
    keys.GPU_POOL: "pool",
    keys.GPU_MODEL: "gpuModel",
}


def worker_name(request: WorkerRequest) -> str:
    """The requested name, or `run-<command>-<random>` made a valid DNS label."""
    if request.name is not None:
        if problem := dns_label_problem(request.name):
            raise ConfigError("name", problem)
        return request.name
    program = PurePath(request.command[0]).name if request.command else "worker"
    stem = re.sub(r"[^a-z0-9-]+", "-", program.lower()).strip("-")[:40] or "worker"
    return f"run-{stem}-{secrets.token_hex(3)}"


def worker_pod(request: WorkerRequest, name: str, pids: str) -> dict[str, Any]:
    """The Pod standing for a worker; AnnotationError from the contract's reader is turned
    into ConfigError naming the request's own field."""
    amounts = {
        keys.TFLOPS_REQUEST: request.tflops_request,
        keys.VRAM_REQUEST: request.vram_request,
        keys.TFLOPS_LIMIT: request.tflops_limit,
        keys.VRAM_LIMIT: request.vram_limit,
    }
    # Only the amounts given: the contract defaults a request to its limit and back.
    annotations = {key: value for key, value in amounts.items() if value is not None} | {
        keys.GPU_COUNT: str(request.gpu_count),
        keys.WORKER_PIDS: pids,
        keys.WORKER_COMMAND: json.dumps(list(request.command)),
    }
    if request.pool is not None:
        annotations[keys.GPU_POOL] = request.pool
    if request.gpu_model is not None:
        annotations[keys.GPU_MODEL] = request.gpu_model
    labels = {keys.ENABLED_LABEL: "true", keys.WORKER_LABEL: "true"}
    _, problems = keys.read_workload_request(labels, annotations)
    if problems:
        raise _as_field_error(problems[0])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": WORKER_NAMESPACE,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": SCHEDULER_NAME,
            "containers": [{"name": "main", "image": "local"}],
        },
        "status": {"phase": "Pending"},
    }


def _as_field_error(problem: AnnotationError) -> ConfigError:
    return ConfigError(_FIELD_OF_KEY.get(problem.key, problem.key), problem.message)


def is_waiting(node: str | None, gpus: Iterable[str], present: Collection[str]) -> bool:
    """Whether a worker waits for a GPU: it is not on a node yet (phase Pending), or none of
    its GPUs is still in the cluster."""
    return not node or not any(gpu in present for gpu in gpus)


def is_pending(worker: Mapping[str, Any], present: Collection[str]) -> bool:
    """`is_waiting` for a worker as `worker_view` lists it."""
    return worker["phase"] == "Pending" or is_waiting(worker["node"], worker["gpus"], present)


def worker_view(
    pod: Mapping[str, Any],
    gpu_indices: Mapping[str, int | None],
    usage: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A worker as `/api/workers` lists it (docs/api.md). The usage's VRAM by tier is listed
    beside it as `vramTiers`."""
    usage = dict(usage) if usage is not None else None
    tiers = usage.pop("vramTiers", None) if usage is not None else None
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    request, _ = keys.read_workload_request(metadata.get("labels") or {}, annotations)
    gpus = list(keys.gpu_ids_of(annotations))
    node = (pod.get("spec") or {}).get("nodeName")
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
        "phase": "Running" if node else "Pending",
        "node": node,
        "gpus": gpus,
        "gpuIndices": [gpu_indices.get(g) for g in gpus],
        "request": _amount(request, "request"),
        "limit": _amount(request, "limit"),
        "pids": _pids(annotations.get(keys.WORKER_PIDS, "")),
        "command": _command(annotations.get(keys.WORKER_COMMAND, "[]")),
        "createdAt": metadata.get("creationTimestamp"),
        "usage": usage,
        "vramTiers": tiers,
    }


def _amount(request: keys.WorkloadRequest | None, which: str) -> dict[str, Any]:
    tflops = getattr(request, f"tflops_{which}", None) if request else None
    vram = getattr(request, f"vram_{which}", None) if request else None
    return {"tflops": float(tflops.exact) if tflops is not None else None, "vram": vram}


def _pids(text: str) -> list[int]:
    try:
        return [process.pid for process in parse_pids(text)]
    except AnnotationError:
        return []  # the agent reports a malformed annotation; a listing shows none


def _command(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(part) for part in value] if isinstance(value, list) else []
