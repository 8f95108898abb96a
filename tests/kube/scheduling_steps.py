"""The real scheduler driven step by step over a store, for the node-pool tests: schedule
until a pass places nothing, then read where the pods went."""

from __future__ import annotations

from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.store.interface import ClusterStore

MAX_PASSES = 5


def schedule_until_idle(store: ClusterStore) -> None:
    loop = SchedulingLoop(store)
    loop.start()
    for _ in range(MAX_PASSES):
        if loop.run_once().scheduled == 0:
            break
    loop.close()


def bound(store: ClusterStore) -> dict[str, str]:
    """Pod name -> node, for the bound pods of namespace default."""
    return {
        pod["metadata"]["name"]: pod["spec"]["nodeName"]
        for pod in store.list("Pod", "default")
        if pod["spec"].get("nodeName")
    }
