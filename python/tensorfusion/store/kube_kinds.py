"""Where each kind the store holds lives in the Kubernetes API: group, version, plural, scope,
and whether its status is a subresource (written apart from the rest of the object)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tensorfusion.api.kinds import KINDS
from tensorfusion.store.scopes import is_namespaced

CRD_GROUP = "tensor-fusion.ai"
CRD_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class KubeKind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    status_subresource: bool
    optional: bool = False
    """Served only where an add-on installed its CRD (Karpenter's NodeClaim): a watch of
    every kind leaves it out."""

    @property
    def api_version(self) -> str:
        """The object's `apiVersion` field."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str | None = None) -> str:
        """The path of the collection, in one namespace or (None) across all of them."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"

    def path(self, name: str, namespace: str = "", subresource: str = "") -> str:
        """The path of one object, or of one of its subresources."""
        path = f"{self.collection(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path


def _builtin(kind: str, group: str, version: str, plural: str, status: bool) -> KubeKind:
    return KubeKind(kind, group, version, plural, is_namespaced(kind), status)


_BUILTIN_KINDS = (
    _builtin("Pod", "", "v1", "pods", True),
    _builtin("Node", "", "v1", "nodes", True),
    _builtin("Namespace", "", "v1", "namespaces", True),
    _builtin("Service", "", "v1", "services", True),
    _builtin("ConfigMap", "", "v1", "configmaps", False),
    _builtin("Secret", "", "v1", "secrets", False),
    _builtin("Event", "", "v1", "events", False),
    _builtin("Lease", "coordination.k8s.io", "v1", "leases", False),
    _builtin("Deployment", "apps", "v1", "deployments", True),
    _builtin("ReplicaSet", "apps", "v1", "replicasets", True),
    _builtin("StatefulSet", "apps", "v1", "statefulsets", True),
    _builtin("DaemonSet", "apps", "v1", "daemonsets", True),
    _builtin("ControllerRevision", "apps", "v1", "controllerrevisions", False),
    _builtin("Job", "batch", "v1", "jobs", True),
    _builtin("PriorityClass", "scheduling.k8s.io", "v1", "priorityclasses", False),
)

# Every CRD of ours declares the status subresource (see charts/tensor-fusion/crds).
KUBE_KINDS: Mapping[str, KubeKind] = {
    **{kind.kind: kind for kind in _BUILTIN_KINDS},
    "NodeClaim": KubeKind(
        "NodeClaim", "karpenter.sh", "v1", "nodeclaims", False, True, optional=True
    ),
    **{
        info.kind: KubeKind(
            info.kind, CRD_GROUP, CRD_VERSION, info.plural, info.scope == "Namespaced", True
        )
        for info in KINDS
    },
}
