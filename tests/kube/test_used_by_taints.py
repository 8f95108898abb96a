"""The used-by taint and label kept by the controller, run with the leader loops that
`tensor-fusion controller` runs under its flags, against the API-server emulator (no
kube-apiserver exists here). With progressive migration, a pod that the scheduler binds marks
its node and no other; another writer's taint and label survive; deleting the pod unmarks the
node. Without the flag the loop does not run and no node is marked."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.gpu_links import text_at
from tensorfusion.errors import ConflictError
from tensorfusion.operator.reconcilers.runner import run_reconcilers
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import fleet_store, guide_pod, running_controller, wait_for
from tests.kube.runner import KubeApi

USED_BY = "tensor-fusion.ai/used-by"
TAINT = {"key": USED_BY, "value": "tensor-fusion", "effect": "PreferNoSchedule"}
OTHER_TAINT = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with fleet_store(kube_api.kubeconfig, nodes=2, gpus_per_node=2) as store:
        yield store


def node_names(store: KubeStore) -> list[str]:
    return [node["metadata"]["name"] for node in store.list("Node")]


def taints(store: KubeStore, name: str) -> list[Any]:
    return list(store.get("Node", name).get("spec", {}).get("taints") or [])


def labels(store: KubeStore, name: str) -> dict[str, str]:
    return dict(store.get("Node", name)["metadata"].get("labels") or {})


def marked(store: KubeStore, name: str) -> bool:
    return TAINT in taints(store, name) and labels(store, name).get(USED_BY) == "tensor-fusion"


def unmarked(store: KubeStore, name: str) -> bool:
    return not any(
        taint.get("key") == USED_BY for taint in taints(store, name)
    ) and USED_BY not in labels(store, name)


def bound_node(store: KubeStore, name: str) -> str | None:
    return text_at(store.get("Pod", name, "default"), "spec", "nodeName")


def add_other_taint_and_label(store: KubeStore, name: str) -> bool:
    """Another writer's taint and label, written over the version read (False on a conflict,
    to be tried again)."""
    node = store.get("Node", name)
    patch = {
        "metadata": {
            "labels": {"team": "ml"},
            "resourceVersion": node["metadata"]["resourceVersion"],
        },
        "spec": {"taints": [*taints(store, name), OTHER_TAINT]},
    }
    try:
        store.patch("Node", name, patch)
    except ConflictError:
        return False
    return True


def test_a_bound_worker_marks_its_node_until_it_is_deleted(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    with running_controller(
        kube_api.kubeconfig,
        tmp_path,
        command_loops=True,
        nvidia_operator_progressive_migration=True,
    ):
        store.create(guide_pod("worker"))
        name = wait_for("the pod to be bound", lambda: bound_node(store, "worker"))
        (idle,) = (other for other in node_names(store) if other != name)
        wait_for("the node to be tainted and labelled", lambda: marked(store, name))
        assert taints(store, name) == [TAINT]
        assert unmarked(store, idle)
        wait_for("another writer's taint", lambda: add_other_taint_and_label(store, name))
        store.delete("Pod", "worker", "default")
        wait_for("the taint and label to go", lambda: unmarked(store, name))
        assert taints(store, name) == [OTHER_TAINT]
        assert labels(store, name)["team"] == "ml"
        assert unmarked(store, idle)


def test_without_the_flag_no_node_is_marked(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    with running_controller(kube_api.kubeconfig, tmp_path, command_loops=True) as running:
        [fleet] = running.controller.loops
        assert isinstance(fleet, partial)
        assert fleet.func is run_reconcilers

        def share_counted(name: str) -> bool:
            """The fleet's reconcilers, which run beside where the used-by loop would, have
            counted the pod's share on its node."""
            status = store.get("GPUNode", name).get("status") or {}
            return status.get("availableVRAM") not in (None, status.get("virtualVRAM"))

        nodes = node_names(store)
        wait_for("the GPUNodes to be reconciled", lambda: not any(map(share_counted, nodes)))
        store.create(guide_pod("worker"))
        name = wait_for("the pod to be bound", lambda: bound_node(store, "worker"))
        wait_for("the pod's share to be counted", lambda: share_counted(name))
        assert all(unmarked(store, node) for node in nodes)
