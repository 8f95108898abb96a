"""The resources the emulator serves: built-in kinds, and kinds a CustomResourceDefinition adds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# What an object's status becomes on create, as each kind's registry strategy does:
# pods start Pending, nodes keep what the kubelet reports, others with a status subresource
# start without one.
StatusOnCreate = Literal["keep", "drop", "pending"]

ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    status_on_create: StatusOnCreate = "drop"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored per group and plural, whatever version serves them."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _core(plural: str, kind: str, namespaced: bool = True, **extra: Any) -> ApiResource:
    return ApiResource("", "v1", plural, kind, namespaced, **extra)


_STATUS = frozenset({"status"})

BUILTIN: tuple[ApiResource, ...] = (
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        subresources=frozenset({"status", "binding", "eviction"}),
        status_on_create="pending",
    ),
    _core(
        "nodes", "Node", False, short_names=("no",), subresources=_STATUS, status_on_create="keep"
    ),
    _core("namespaces", "Namespace", False, short_names=("ns",), subresources=_STATUS),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core("services", "Service", short_names=("svc",), subresources=_STATUS),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("events", "Event", short_names=("ev",)),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",)),
    ApiResource("apps", "v1", "deployments", "Deployment", True, ("deploy",), _STATUS),
    ApiResource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _STATUS),
    ApiResource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _STATUS),
    ApiResource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _STATUS),
    ApiResource("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ApiResource("batch", "v1", "jobs", "Job", True, (), _STATUS),
    ApiResource("coordination.k8s.io", "v1", "leases", "Lease", True),
    ApiResource("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    ApiResource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    ApiResource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ApiResource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ApiResource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ApiResource(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
    ),
    ApiResource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    ApiResource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    ApiResource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        _STATUS,
    ),
    ApiResource(
        "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",)
    ),
)


def _field(obj: Mapping[str, Any], path: str) -> Any:
    """The value at dotted `path` in a CRD, or a ValueError that names the field."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"{path}: Required value")
        value = value[part]
    return value


def crd_resources(crd: Mapping[str, Any]) -> list[ApiResource]:
    """The resources a CustomResourceDefinition serves, one per served version."""
    group = _field(crd, "spec.group")
    plural = _field(crd, "spec.names.plural")
    kind = _field(crd, "spec.names.kind")
    scope = _field(crd, "spec.scope")
    versions = _field(crd, "spec.versions")
    if scope not in ("Namespaced", "Cluster"):
        raise ValueError(f'spec.scope: Unsupported value: "{scope}"')
    if not isinstance(versions, list) or not versions:
        raise ValueError(
            "spec.versions: Required value: must have exactly one version marked as storage"
        )
    short_names = tuple(crd["spec"]["names"].get("shortNames") or ())
    resources = []
    for index, version in enumerate(versions):
        if not isinstance(version, Mapping) or not isinstance(version.get("name"), str):
            raise ValueError(f"spec.versions[{index}].name: Required value")
        if not version.get("served", False):
            continue
        subresources = frozenset((version.get("subresources") or {}).keys())
        resources.append(
            ApiResource(
                group,
                version["name"],
                plural,
                kind,
                scope == "Namespaced",
                short_names,
                subresources,
            )
        )
    return resources
