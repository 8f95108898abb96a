"""The `FailedScheduling` Event kube-scheduler writes for a pod that does not fit, so that
`kubectl describe pod` and `kubectl get events` tell why, with the scheduler's summary line
("0/20 nodes are available: ...")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

FAILED_SCHEDULING: Final = "FailedScheduling"


def failed_scheduling_event(pod: Mapping[str, Any], message: str, now_ns: int) -> dict[str, Any]:
    """The Event for `pod`, named as kube's are: the pod's name and the time in hex."""
    metadata = pod.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    stamp = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata.get('name')}.{now_ns:x}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": metadata.get("name"),
            "namespace": namespace,
            "uid": metadata.get("uid"),
        },
        "reason": FAILED_SCHEDULING,
        "message": message,
        "type": "Warning",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": SCHEDULER_NAME},
        "reportingComponent": SCHEDULER_NAME,
    }


def failed_scheduling_recorder(
    store: ClusterStore, clock_ns: Callable[[], int] = time.time_ns
) -> Callable[[dict[str, Any], str], None]:
    """`SchedulingLoop`'s `on_unschedulable`: write the Event; a write that fails is logged,
    never raised (the pod's condition already says why)."""

    def record(pod: dict[str, Any], message: str) -> None:
        try:
            store.create(failed_scheduling_event(pod, message, clock_ns()))
        except Exception as exc:
            name = (pod.get("metadata") or {}).get("name")
            log.warning("could not write the %s event of %s: %s", FAILED_SCHEDULING, name, exc)

    return record
