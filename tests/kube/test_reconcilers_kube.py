"""The reconcilers through KubeStore against the API-server emulator: the cluster's pool,
the selected node's GPUNode, and capacity in status, then a second pass that writes nothing;
a deleted pod's share comes back, and a node that leaves the selector loses its GPUNode."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes
import pytest

from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import wait_for
from tests.crd_bodies import crd_bodies
from tests.kube.runner import KubeApi
from tests.unit.operator.reconciler_objects import cluster, gpu, node, pod


@pytest.mark.timing  # the changes after the lists come as the watch streams deliver them
def test_reconcilers_over_the_emulator(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    for body in crd_bodies():
        extensions.create_custom_resource_definition(body=body)
    with KubeStore(kube_api.kubeconfig) as store:
        store.create(cluster())
        store.create(node("n0"))
        for index in range(2):
            store.create(gpu("n0", index, "c-p"))
        store.create(pod("w", "n0", ["n0-gpu-0"], "10", "4Gi"))
        controller = Controller(store)
        controller.start()
        controller.drain()
        pool = store.get("GPUPool", "c-p")
        assert pool["metadata"]["ownerReferences"][0]["name"] == "c"
        gpu_node = store.get("GPUNode", "n0")
        assert gpu_node["metadata"]["ownerReferences"][0]["name"] == "n0"
        # No agent reported the host here: no VRAM expansion is granted.
        assert gpu_node["status"]["virtualTFlops"] == "600"
        assert gpu_node["status"]["availableVRAM"] == "76Gi"
        assert store.get("GPUPool", "c-p")["status"]["phase"] == "Running"
        assert store.get("TensorFusionCluster", "c")["status"]["totalGPUs"] == 2
        writes = controller.context.writes
        controller.start()
        controller.drain()
        assert controller.context.writes == writes

        def drained_until(what: str, holds: Callable[[], bool]) -> None:
            """Reconcile the changes as their watch streams deliver them, until `holds`."""
            wait_for(what, lambda: controller.drain() >= 0 and holds())

        store.delete("Pod", "w", "default")
        drained_until(
            "the pod's share to come back",
            lambda: store.get("GPUNode", "n0")["status"]["availableVRAM"] == "80Gi",
        )
        store.patch("Node", "n0", {"metadata": {"labels": {"gpu": None}}})
        drained_until(
            "the GPUNode of a node that left the pool to go, and the pool to count it out",
            lambda: (
                not store.list("GPUNode")
                and store.get("GPUPool", "c-p")["status"]["totalNodes"] == 0
            ),
        )
