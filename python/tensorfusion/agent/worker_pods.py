"""Which pods are local workers (embedded mode): those labelled as such and carrying their
processes' pids. The label lets the store list them without reading every pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorfusion.api.annotations import WORKER_LABEL, WORKER_PIDS
from tensorfusion.store.interface import ClusterStore

WORKER_SELECTOR = {WORKER_LABEL: "true"}


def is_worker(pod: Mapping[str, Any]) -> bool:
    metadata = pod.get("metadata") or {}
    return (metadata.get("labels") or {}).get(WORKER_LABEL) == "true" and (
        WORKER_PIDS in (metadata.get("annotations") or {})
    )


def list_workers(store: ClusterStore) -> list[dict[str, Any]]:
    return [pod for pod in store.list("Pod", label_selector=WORKER_SELECTOR) if is_worker(pod)]
