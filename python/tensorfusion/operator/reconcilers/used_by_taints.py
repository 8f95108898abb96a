"""Progressive migration beside the NVIDIA device plugin (`-nvidia-operator-progressive-
migration`): a Node that runs a TensorFusion worker carries the used-by taint
(`tensor-fusion.ai/used-by=tensor-fusion:PreferNoSchedule`) and the used-by label of the same
key and value; once its last worker is gone, both go.

The taint is only a preference, which a scheduler may overrule when nothing else fits. The
label is what a required node affinity (`tensor-fusion.ai/used-by DoesNotExist`) can enforce,
so that a pod keeping `nvidia.com/gpu` is never placed beside TensorFusion workers, whose GPUs
the device plugin would hand out a second time. Converted pods tolerate the taint.

A worker is a pod bound to the node, of the TensorFusion scheduler or holding GPUs by its
`gpu-ids`, that has not finished. One being deleted still counts: it holds its GPUs until it
is gone.

Only our own taint and label (the used-by key with our value) are ever added or removed.
Where another writer holds the key (a taint of the same key and effect, or the label, under
another value), it is left as it is: it already keeps untolerating pods off, and Kubernetes
allows one taint per key and effect.

This controller runs in a leader loop of its own, started only with the flag on. With the flag
off it does not run, and taints and labels it wrote stay: turning migration off does not let
native pods onto nodes whose workers still run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from tensorfusion.api.annotations import gpu_ids_of
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.operator.reconcilers.cache import ObjectCache
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.runner import Controller, ReconcilerSet
from tensorfusion.operator.reconcilers.work_queue import Key, Result
from tensorfusion.scheduler.allocator import TERMINAL_PHASES
from tensorfusion.store.interface import ClusterStore
from tensorfusion.webhook.conversion import USED_BY_TAINT, USED_BY_VALUE

USED_BY_EFFECT: Final = "PreferNoSchedule"
TAINT: Final = {"key": USED_BY_TAINT, "value": USED_BY_VALUE, "effect": USED_BY_EFFECT}
INVALID_TAINTS: Final = "InvalidTaints"
"""The Warning Event's reason where a node's taints cannot be read."""
BAD_TAINTS_MESSAGE: Final = (
    "spec.taints: must be a list of taints (objects); the used-by taint and label are not "
    "changed until it is"
)


def is_worker(pod: Mapping[str, Any]) -> bool:
    """Whether a pod is a TensorFusion worker on its node (see the module's docstring)."""
    if not text_at(pod, "spec", "nodeName"):
        return False
    if text_at(pod, "status", "phase") in TERMINAL_PHASES:
        return False
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return text_at(pod, "spec", "schedulerName") == SCHEDULER_NAME or bool(gpu_ids_of(annotations))


def _holds_slot(taint: object, value: str | None = None) -> bool:
    """A taint of the used-by key and effect (of `value`, if given)."""
    return (
        isinstance(taint, Mapping)
        and taint.get("key") == USED_BY_TAINT
        and taint.get("effect") == USED_BY_EFFECT
        and (value is None or taint.get("value") == value)
    )


def _wanted_taints(taints: list[Any], used: bool) -> list[Any]:
    """The node's taints as they should be, in their order: ours added where the node is in
    use and nobody holds its key and effect yet, ours removed where it is not in use."""
    if not used:
        return [taint for taint in taints if not _holds_slot(taint, USED_BY_VALUE)]
    if any(_holds_slot(taint) for taint in taints):
        return taints
    return [*taints, dict(TAINT)]


def _label_patch(label: str | None, used: bool) -> dict[str, str | None] | None:
    """The used-by label's change, if any: ours set where the key is free and the node in
    use, removed where it is not in use."""
    if used and label is None:
        return {USED_BY_TAINT: USED_BY_VALUE}
    if not used and label == USED_BY_VALUE:
        return {USED_BY_TAINT: None}
    return None


def _taints_of(node: Mapping[str, Any]) -> list[Any] | None:
    """The node's taints; None where `spec.taints` is not a list of objects."""
    spec = node.get("spec") or {}
    if not isinstance(spec, Mapping):
        return None
    taints = spec.get("taints") or []
    if isinstance(taints, list) and all(isinstance(taint, Mapping) for taint in taints):
        return taints
    return None


def reconcile_used_by(ctx: Context, key: Key) -> Result:
    node = ctx.cache.get("Node", key.name)
    if node is None:
        return Result()
    taints = _taints_of(node)
    if taints is None:
        ctx.warn(node, INVALID_TAINTS, BAD_TAINTS_MESSAGE)
        return Result()  # the node changes when it is fixed, which queues it again
    used = any(is_worker(pod) for pod in ctx.cache.children("Pod", key.name))
    patch: dict[str, Any] = {}
    wanted_taints = _wanted_taints(taints, used)
    if wanted_taints != taints:
        patch["spec"] = {"taints": wanted_taints or None}
    labels = _label_patch(text_at(node, "metadata", "labels", USED_BY_TAINT), used)
    if labels is not None:
        patch["metadata"] = {"labels": labels}
    if patch:
        # Guarded by the resourceVersion read (the taint list is replaced whole): on a
        # conflict the queue retries from the node's newer version, so no other writer's
        # taint is lost.
        ctx.patch(node, patch)
    return Result()


def used_by_keys(
    obj: Mapping[str, Any], old: Mapping[str, Any] | None, cache: ObjectCache
) -> Iterator[Key]:
    """A node's own changes, and a worker's arrival on or departure from it."""
    if obj["kind"] == "Node":
        yield Key("Node", "", obj["metadata"]["name"])
    elif obj["kind"] == "Pod":
        for version in [obj] if old is None else [obj, old]:
            node_name = text_at(version, "spec", "nodeName")
            if node_name and is_worker(version):
                yield Key("Node", "", node_name)


USED_BY_TAINTS = ReconcilerSet(("Node", "Pod"), {"Node": reconcile_used_by}, used_by_keys)


def run_used_by_taints(
    store: ClusterStore, stop: threading.Event, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Keep the used-by taints and labels until `stop` is set (the controller's leader runs
    this with `-nvidia-operator-progressive-migration`)."""
    Controller(store, USED_BY_TAINTS, clock=clock).run(stop)
