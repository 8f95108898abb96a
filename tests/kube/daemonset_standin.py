"""A stand-in for Kubernetes' DaemonSet controller, for one DaemonSet that updates OnDelete
(the node agents'): what the real controller would do, done when a test calls `sync()`.

It records a ControllerRevision (labelled with the template's hash, owned by the DaemonSet,
numbered by `revision`) when the template changes, and makes a missing agent pod on each node
from the current template: labelled with its hash, owned by the DaemonSet, and Ready unless
the node is listed in `failing` (then it is Ready only once a test calls `make_ready`, as a
slow start that ends). As with OnDelete, a running pod is never replaced."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tensorfusion.errors import NotFoundError
from tensorfusion.operator.nodepool.view import REVISION_LABEL
from tensorfusion.operator.reconcilers.cache import owner_name
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.objects import JsonObject

NAMESPACE = "tensor-fusion-sys"
NAME = "tensor-fusion-agent"


class DaemonSetStandIn:
    def __init__(self, store: ClusterStore, name: str = NAME, namespace: str = NAMESPACE):
        self.store = store
        self.name = name
        self.namespace = namespace
        self.failing: set[str] = set()
        """Nodes whose new agent pods are not Ready when made."""

    def set_image(self, image: str) -> None:
        """Create the DaemonSet, or change its pod template to run `image`."""
        template = {
            "metadata": {"labels": {"app": self.name}},
            "spec": {"containers": [{"name": "agent", "image": image}]},
        }
        try:
            self.store.patch(
                "DaemonSet", self.name, {"spec": {"template": template}}, self.namespace
            )
        except NotFoundError:
            self.store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {
                        "selector": {"matchLabels": {"app": self.name}},
                        "updateStrategy": {"type": "OnDelete"},
                        "template": template,
                    },
                }
            )

    def current_hash(self) -> str:
        template = self._daemonset()["spec"]["template"]
        return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]

    def sync(self) -> None:
        """Record the template's revision if it is new, make each node's missing pod, and
        count the nodes it runs on in its status."""
        daemonset = self._daemonset()
        current = self.current_hash()
        revisions = self._owned("ControllerRevision")
        if not any(r["metadata"]["labels"].get(REVISION_LABEL) == current for r in revisions):
            self.store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ControllerRevision",
                    "metadata": {
                        "name": f"{self.name}-{current}",
                        "namespace": self.namespace,
                        "labels": {REVISION_LABEL: current},
                        "ownerReferences": [self._owner(daemonset)],
                    },
                    "data": daemonset["spec"]["template"],
                    "revision": 1 + max((int(r["revision"]) for r in revisions), default=0),
                }
            )
        running = {pod["spec"]["nodeName"] for pod in self._owned("Pod")}
        for node in self.store.list("Node"):
            node_name = node["metadata"]["name"]
            if node_name not in running:
                self.store.create(self._pod(daemonset, node_name, current))
        nodes = len(self.store.list("Node"))
        if (daemonset.get("status") or {}).get("desiredNumberScheduled") != nodes:
            status = {"desiredNumberScheduled": nodes}
            self.store.patch("DaemonSet", self.name, {"status": status}, self.namespace)

    def make_ready(self, *nodes: str) -> None:
        """The agent pods on `nodes` become Ready."""
        pods = self.pods()
        ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        for node in nodes:
            self.store.patch(
                "Pod", pods[node]["metadata"]["name"], {"status": ready}, self.namespace
            )

    def pods(self) -> dict[str, JsonObject]:
        """The agent pod of each node, by node name."""
        return {pod["spec"]["nodeName"]: pod for pod in self._owned("Pod")}

    def _daemonset(self) -> JsonObject:
        return self.store.get("DaemonSet", self.name, self.namespace)

    def _owned(self, kind: str) -> list[JsonObject]:
        return [
            obj
            for obj in self.store.list(kind, namespace=self.namespace)
            if owner_name(obj, "DaemonSet") == self.name
        ]

    def _owner(self, daemonset: JsonObject) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": self.name,
            "uid": daemonset["metadata"]["uid"],
            "controller": True,
        }

    def _pod(self, daemonset: JsonObject, node: str, current: str) -> dict[str, Any]:
        ready = "False" if node in self.failing else "True"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{self.name}-{node}-{current}",
                "namespace": self.namespace,
                "labels": {"app": self.name, REVISION_LABEL: current},
                "ownerReferences": [self._owner(daemonset)],
            },
            "spec": {"nodeName": node, **daemonset["spec"]["template"]["spec"]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]},
        }
