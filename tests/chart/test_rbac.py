"""The chart's RBAC grants exactly the requests the controller and the agent make: the rules
are computed here from the code (the kinds each part follows or writes, KubeStore's kind
table for each kind's group, plural and status subresource, and the HTTP requests each
KubeStore operation sends) and compared with the rendered roles, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, NamedTuple

from tensorfusion.operator.reconcilers.cache import WATCHED_KINDS as RECONCILED_KINDS
from tensorfusion.scheduler.loop import WATCHED_KINDS as SCHEDULED_KINDS
from tensorfusion.store.kube_kinds import KUBE_KINDS
from tests.chart.render import render


class Grant(NamedTuple):
    group: str
    resource: str
    verb: str


# The requests each KubeStore operation sends: (subresource, verb). A status write also goes
# to the status subresource when the kind has one; follow/watch read the current version
# with a one-item list of all pods.
OPERATIONS: Final = {
    "list": [("", "list")],
    "follow": [("", "list"), ("", "watch")],
    "get": [("", "get")],
    "create": [("", "create")],
    "update": [("", "update")],
    "upsert": [("", "get"), ("", "create"), ("", "update"), ("status", "update")],
    "patch": [("", "get"), ("", "patch")],
    "patch-status": [("", "get"), ("status", "patch")],
    "delete": [("", "get"), ("", "delete")],
    "bind": [("", "get"), ("", "patch"), ("binding", "create")],
    # An ownerReference with blockOwnerDeletion needs update on the owner's finalizers.
    "own-blocking": [("finalizers", "update")],
}


def _uses(**by_operation: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(kind, op.replace("_", "-")) for op, kinds in by_operation.items() for kind in kinds}


CONTROLLER_USES: Final = _uses(
    # The scheduler's and the reconcilers' informers, and the pods list every feed starts with.
    follow=(*SCHEDULED_KINDS, *RECONCILED_KINDS),
    bind=("Pod",),
    # Why a pod is unschedulable (scheduler); capacity and phase (reconcilers); claims'
    # phases (node provisioning).
    patch_status=("Pod", "TensorFusionCluster", "GPUPool", "GPUNode", "GPU", "GPUNodeClaim"),
    # Node pools: claims for new nodes, cordons, the agents a rolling update restarts, the
    # pods a compacted node is drained of, and the nodes whose instances are gone.
    create=("GPUPool", "GPUNode", "Event", "NodeClaim", "GPUNodeClaim"),
    patch=("GPUPool", "GPUNode", "Node", "GPUNodeClaim"),
    delete=("GPUPool", "GPUNode", "Pod", "Node", "NodeClaim", "GPUNodeClaim"),
    own_blocking=("TensorFusionCluster",),
    # The webhook: the pools, and the count of converted replicas of each workload.
    list=("GPUPool", "Pod", "GPU"),
    get=("ConfigMap",),
    update=("ConfigMap",),
) | {("ConfigMap", "create")}
AGENT_USES: Final = _uses(
    follow=("Pod",),
    upsert=("GPU",),  # discovery registers its GPUs
    patch_status=("GPUNode",),
    list=("ProviderConfig",),
    get=("GPUPool",),  # its pool's VRAM expansion sets the workers' paging budgets
)
# Not through the store: the management API's TokenReviews, and the lease (its own Role).
CONTROLLER_EXTRA: Final = {Grant("authentication.k8s.io", "tokenreviews", "create")}
LEASE_GRANTS: Final = {
    Grant("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")
}


def expected(uses: set[tuple[str, str]]) -> set[Grant]:
    grants = set()
    for kind_name, operation in uses:
        kind = KUBE_KINDS[kind_name]
        for subresource, verb in OPERATIONS[operation]:
            part = "" if subresource == "status" and not kind.status_subresource else subresource
            resource = f"{kind.plural}/{part}" if part else kind.plural
            grants.add(Grant(kind.group, resource, verb))
    return grants


def granted(role: dict[str, Any]) -> set[Grant]:
    return {
        Grant(group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_controller_cluster_role_is_exactly_what_it_uses(helm: Path) -> None:
    role = render(helm).one("ClusterRole", "tensor-fusion-sys-controller")
    assert granted(role) == expected(CONTROLLER_USES) | CONTROLLER_EXTRA


def test_agent_cluster_role_is_exactly_what_it_uses(helm: Path) -> None:
    role = render(helm).one("ClusterRole", "tensor-fusion-sys-agent")
    assert granted(role) == expected(AGENT_USES)


def test_leases_only_in_the_release_namespace(helm: Path) -> None:
    out = render(helm, namespace="ops")
    role = out.one("Role", "tensor-fusion-sys-controller")
    assert role["metadata"]["namespace"] == "ops"
    assert granted(role) == LEASE_GRANTS
    binding = out.one("RoleBinding", "tensor-fusion-sys-controller")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tensor-fusion-sys", "namespace": "ops"}
    ]


def test_a_missing_or_extra_grant_is_seen() -> None:
    role = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
    assert granted(role) != expected(_uses(list=("Pod",)))
    assert granted(role) == expected(_uses(list=("Pod",), get=("Pod",)))
