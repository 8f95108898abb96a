"""A pool's own GPU nodes (provisioningMode Provisioned), launched through the cluster's
computing vendor and tracked one GPUNodeClaim per instance.

Each node to add becomes a claim first (phase Pending), and only then an instance: the
claim's name is the launch's idempotency token and the instance's tag, so a crash between
the two neither leaks an instance nor launches a second one. A claim is Provisioning once
launched and Running once a Node of its instance (providerID `aws:///<zone>/<id>`) has
registered; it records why it is where it is (instance types passed over, the vendor's last
error). Errors that waiting mends are retried with exponential backoff; the others fail the
claim, and no further claim is made until a person has dealt with it (deleted it).

Nothing is left untracked: every pass lists the pool's instances, terminates any whose claim
does not exist or names another instance, and deletes the claims whose instance is gone
(with the Node, as the cloud controller manager would). A claim marked for release
(compaction) has its instance terminated (phase Terminating) and is deleted once the
instance is gone.

The controller's memory of a claim is in its annotations (instance, attempts, next attempt,
last error); its status is output, written from them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tensorfusion.api.base import API_VERSION, GROUP
from tensorfusion.api.cluster import ComputingVendor
from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.gpu_links import POOL_LABEL, text_at
from tensorfusion.api.node import ClaimPhase, GPUNodeClass
from tensorfusion.api.pool import CAPACITY_TYPE_KEY, GPUPoolSpec
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import (
    AlreadyExistsError,
    CloudError,
    ConfigError,
    NotFoundError,
    StoreError,
)
from tensorfusion.operator.nodepool.aws import cloud_provider, served_clouds
from tensorfusion.operator.nodepool.cloud import CloudProvider, Instance, LaunchRequest
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.instance_types import CATALOG, NodeShape, interchangeable
from tensorfusion.operator.nodepool.karpenter import arriving
from tensorfusion.operator.nodepool.plan import Action, PartPlan, PoolCondition
from tensorfusion.operator.nodepool.release import releasing
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.store.objects import JsonObject
from tensorfusion.store.timestamps import parse_rfc3339_or_none, rfc3339

if TYPE_CHECKING:
    from tensorfusion.operator.nodepool.capacity_plan import ScaleDecision
    from tensorfusion.operator.reconcilers.context import Context

PART = "provisioning"
CONDITION = "Provisioning"
CREATE_NODECLAIM = "create-nodeclaim"
INSTANCE_ANNOTATION = "tensor-fusion.ai/instance-id"
LAUNCHED_ANNOTATION = "tensor-fusion.ai/launched-at"
ATTEMPTS_ANNOTATION = "tensor-fusion.ai/launch-attempts"
"""Failed launch attempts so far (the backoff doubles with each)."""
RETRY_ANNOTATION = "tensor-fusion.ai/retry-after"
"""When the next launch attempt is due (RFC 3339)."""
ERROR_ANNOTATION = "tensor-fusion.ai/launch-error"
"""The vendor's last refusal, as JSON: kind, code, message."""
ZONE_KEY = "topology.kubernetes.io/zone"
BACKOFF_S = 30.0
MAX_BACKOFF_S = 900.0
POLL_S = 30.0
"""How often a pool with instances on their way (launching, terminating) is looked at: the
vendor tells nobody when an instance's state changes."""
SWEEP_S = 300.0
"""How often a pool is looked at anyway, even with no claim: an instance may show up in the
vendor's listing only after its claim is gone (the listing is eventually consistent), and
nothing in the cluster changes to say so; the look terminates it."""
LAUNCH_GRACE_S = 300.0
"""How long a launched instance may be missing from the vendor's listing (its API is
eventually consistent) before its claim counts as lost."""
_REASONS = {
    "throttled": "Throttled",
    "capacity": "InsufficientCapacity",
    "credentials": "BadCredentials",
    "invalid": "InvalidRequest",
    "other": "CloudError",
}


def _reason(error: CloudError) -> str:
    """The pool condition's reason for a cloud error."""
    return _REASONS.get(error.kind, "CloudError")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _error(claim: Mapping[str, Any]) -> CloudError | None:
    text = _annotations(claim).get(ERROR_ANNOTATION)
    if not text:
        return None
    try:
        body = json.loads(text)
        return CloudError(str(body["kind"]), str(body["code"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        return CloudError("other", "Unknown", text)


def _registered(claim: Mapping[str, Any], view: PoolView) -> str | None:
    """The name of the claim's registered Node: the one it names, or the one whose
    providerID ends with its instance's id."""
    named = text_at(claim, "spec", "nodeName")
    if named and named in view.nodes:
        return named
    instance = _annotations(claim).get(INSTANCE_ANNOTATION)
    if not instance:
        return None
    for name, node in view.nodes.items():
        if (text_at(node, "spec", "providerID") or "").endswith(f"/{instance}"):
            return name
    return None


def claim_phase(claim: Mapping[str, Any], view: PoolView) -> ClaimPhase:
    annotations = _annotations(claim)
    if releasing(claim):
        return "Terminating"
    if annotations.get(INSTANCE_ANNOTATION):
        return "Running" if _registered(claim, view) else "Provisioning"
    error = _error(claim)
    return "Failed" if error is not None and not error.retryable else "Pending"


def _arrivals(view: PoolView, now: datetime) -> tuple[list[NodeShape], datetime | None]:
    shapes: list[NodeShape] = []
    settles: list[datetime] = []
    for claim in view.gpu_node_claims:
        shape = CATALOG.get(text_at(claim, "spec", "instanceType") or "")
        if shape is None or claim_phase(claim, view) in ("Failed", "Terminating"):
            continue
        node = _registered(claim, view)
        on_its_way, settles_at = arriving(view, node, now)
        if on_its_way:
            shapes.append(shape)
        if settles_at is not None:
            settles.append(settles_at)
    return shapes, min(settles, default=None)


def provisioned_in_flight(view: PoolView, now: datetime) -> list[NodeShape]:
    """The shapes of the claims on their way (karpenter.arriving) at `now`: made (launched or
    waiting to be), not failed, not released, and their node not yet arrived. A claim of a
    type the catalog does not know (made by hand) is not counted."""
    return _arrivals(view, now)[0]


def vendor_problem(view: PoolView, config: NodePoolConfig) -> str | None:
    """Why the pool's computing vendor cannot launch nodes (naming the field), or None."""
    vendor = view.vendor
    if vendor is None or vendor.type is None:
        return "computingVendor: the cluster names no computing vendor to launch nodes with"
    if not vendor.enable:
        return "computingVendor.enable: false, so no node is launched"
    if vendor.type not in served_clouds(config.clouds):
        return f"computingVendor.type: {vendor.type!r} cannot launch nodes here"
    if not vendor.params.default_region:
        return "computingVendor.params.defaultRegion: missing, the region to launch nodes in"
    return None


def _fallbacks(shapes: Sequence[NodeShape], instance_type: str) -> tuple[str, ...]:
    """The types to try for a claim of `instance_type`, in order (see `interchangeable`)."""
    shape = CATALOG.get(instance_type)
    return (instance_type,) if shape is None else tuple(interchangeable(shape, shapes))


def _claim_names(view: PoolView, count: int) -> list[str]:
    """New claims' names, each with a random suffix: a name is the launch's idempotency token
    at the vendor, so it is never used twice, not even after its claim is deleted."""
    return [f"{view.name}-{uuid.uuid4().hex[:12]}" for _ in range(count)]


def plan_provisioned(
    view: PoolView,
    decision: ScaleDecision,
    shapes: Sequence[NodeShape],
    now: datetime,
    config: NodePoolConfig,
) -> PartPlan:
    """`shapes`: what the pool may provision (`instance_types.shapes_for`), in its order."""
    problem = vendor_problem(view, config)
    if problem is not None or view.spec is None:
        reason = "NoComputingVendor" if problem else "InvalidSpec"
        message = problem or view.problem or ""
        return PartPlan(PART, conditions=(PoolCondition(CONDITION, "False", reason, message),))
    actions: list[Action] = []
    failed: list[tuple[str, CloudError]] = []
    retrying: list[tuple[str, CloudError, datetime]] = []
    on_the_way = False
    for claim in view.gpu_node_claims:
        name, phase, error = _name(claim), claim_phase(claim, view), _error(claim)
        if phase == "Failed" and error is not None:
            failed.append((name, error))
        elif phase == "Terminating":
            on_the_way = True
            actions.append(Action("release-instance", name, "marked for release"))
        elif phase == "Provisioning":
            on_the_way = True
        elif phase == "Pending":
            at = _retry_at(claim)
            fallbacks = _fallbacks(shapes, text_at(claim, "spec", "instanceType") or "")
            detail: dict[str, Any] = {"instanceTypes": list(fallbacks)}
            if at is not None and at > now and error is not None:
                retrying.append((name, error, at))
                actions.append(Action("launch-instance", name, error.code, "waiting", at, detail))
            else:
                actions.append(Action("launch-instance", name, "claim not launched", detail=detail))
    held = failed[0] if failed else None
    for name, shape, why in zip(
        _claim_names(view, len(decision.add)), decision.add, decision.reasons, strict=False
    ):
        detail = {
            "instanceType": shape.instance_type,
            "instanceTypes": list(_fallbacks(shapes, shape.instance_type)),
            "costPerHour": str(shape.cost_per_hour),
        }
        if held is None:
            actions.append(Action(CREATE_NODECLAIM, name, why, detail=detail))
        else:
            reason = f"claim {held[0]} failed ({held[1].code}): fix the cause and delete it"
            actions.append(Action(CREATE_NODECLAIM, name, reason, "held", detail=detail))
    # Looked at when a node settles (the pods it takes no longer need another), and in any
    # case every sweep (SWEEP_S): a late-listed instance changes nothing in the cluster.
    settles = _arrivals(view, now)[1]
    wakes = [at for _, _, at in retrying] + ([settles] if settles else [])
    wakes.append(now + timedelta(seconds=POLL_S if on_the_way else SWEEP_S))
    return PartPlan(
        PART,
        actions=tuple(actions),
        conditions=(_condition(view, failed, retrying),),
        wake_at=min(wakes, default=None),
    )


def _retry_at(claim: Mapping[str, Any]) -> datetime | None:
    return parse_rfc3339_or_none(_annotations(claim).get(RETRY_ANNOTATION))


def _condition(
    view: PoolView,
    failed: Sequence[tuple[str, CloudError]],
    retrying: Sequence[tuple[str, CloudError, datetime]],
) -> PoolCondition:
    if failed:
        name, error = failed[0]
        return PoolCondition(
            CONDITION,
            "False",
            _reason(error),
            f"claim {name} failed: {error}; no node is launched until it is deleted",
        )
    if retrying:
        name, error, at = retrying[0]
        return PoolCondition(
            CONDITION,
            "False",
            _reason(error),
            f"claim {name}: {error}; next attempt at {rfc3339(at)}",
        )
    phases = [claim_phase(claim, view) for claim in view.gpu_node_claims]
    running = phases.count("Running")
    waiting = len(phases) - running
    if waiting:
        return PoolCondition(
            CONDITION, "True", "Launching", f"{running} nodes running, {waiting} on their way"
        )
    return PoolCondition(CONDITION, "True", "Ready", f"{running} nodes running")


@dataclass(frozen=True)
class _Pass:
    """One apply for one pool: where it writes, what it read, the vendor it launches with."""

    ctx: Context
    view: PoolView
    spec: GPUPoolSpec
    vendor: ComputingVendor
    provider: CloudProvider
    now: datetime

    @property
    def pool(self) -> JsonObject:
        return self.view.pool


def apply_provisioned(ctx: Context, view: PoolView, plan: PartPlan) -> None:
    spec, vendor = view.spec, view.vendor
    if vendor_problem(view, ctx.node_pools) is not None or spec is None or vendor is None:
        return
    try:
        provider = cloud_provider(vendor, ctx.node_pools.clouds)
        live = {i.instance_id: i for i in provider.instances(view.name)}
    except (CloudError, ConfigError) as exc:
        ctx.warn(view.pool, "CloudUnavailable", f"cannot list the pool's instances: {exc}")
        return
    run = _Pass(ctx, view, spec, vendor, provider, ctx.now())
    _terminate_untracked(run, live.values())
    for claim in view.gpu_node_claims:
        _follow(run, claim, live)
    for action in plan.due():
        target: JsonObject | None = None
        if action.kind == CREATE_NODECLAIM:
            target = _create(run, action)
        elif action.kind == "launch-instance":
            target = ctx.cache.get("GPUNodeClaim", action.target)
        if target is not None and claim_phase(target, view) == "Pending":
            _launch(run, target, action)


def _terminate_untracked(run: _Pass, instances: Iterable[Instance]) -> None:
    untracked = [i for i in instances if i.state != "shutting-down" and not _tracked(run, i)]
    if not untracked:
        return
    ids = [i.instance_id for i in untracked]
    try:
        run.provider.terminate(ids)
    except CloudError as exc:
        run.ctx.warn(run.pool, "CloudUnavailable", f"cannot terminate {', '.join(ids)}: {exc}")
        return
    for instance in untracked:
        run.ctx.warn(
            run.pool,
            "UntrackedInstanceTerminated",
            f"instance {instance.instance_id} ({instance.instance_type}) of claim "
            f"{instance.claim or '(none)'} is not its GPUNodeClaim's instance: terminated",
        )


def _tracked(run: _Pass, instance: Instance) -> bool:
    """Whether the instance's claim exists and holds it: names it, or names no instance yet
    (launched, not recorded). One the claim does not name is left alone for LAUNCH_GRACE
    after the claim's launch, while the listing may still lag."""
    claim = run.ctx.cache.get("GPUNodeClaim", instance.claim) if instance.claim else None
    if claim is None:
        return False
    named = _annotations(claim).get(INSTANCE_ANNOTATION)
    return not named or named == instance.instance_id or not _launch_settled(claim, run.now)


def _follow(run: _Pass, claim: JsonObject, live: Mapping[str, Instance]) -> None:
    """Bring one claim's status and instance in line with where it is."""
    annotations = _annotations(claim)
    instance_id = annotations.get(INSTANCE_ANNOTATION)
    instance = live.get(instance_id) if instance_id else None
    released = releasing(claim)
    if instance is None and (released or (instance_id and _launch_settled(claim, run.now))):
        _forget(run, claim, instance_id, released)
        return
    if released and instance is not None and instance.state != "shutting-down":
        try:
            run.provider.terminate([instance.instance_id])
        except CloudError as exc:
            run.ctx.warn(run.pool, "CloudUnavailable", f"claim {_name(claim)}: {exc}")
    node = _registered(claim, run.view)
    if node and text_at(claim, "spec", "nodeName") != node:
        claim = run.ctx.patch(claim, {"spec": {"nodeName": node}})
    run.ctx.write_status(claim, {"phase": claim_phase(claim, run.view)})


def _launch_settled(claim: Mapping[str, Any], now: datetime) -> bool:
    launched = parse_rfc3339_or_none(_annotations(claim).get(LAUNCHED_ANNOTATION))
    return launched is None or (now - launched).total_seconds() >= LAUNCH_GRACE_S


def _forget(run: _Pass, claim: JsonObject, instance_id: str | None, released: bool) -> None:
    """The claim's instance is gone: delete its Node (the cloud controller manager's part)
    and the claim."""
    node_name = text_at(claim, "spec", "nodeName")
    node = run.ctx.cache.get("Node", node_name) if node_name else None
    if node is not None:
        run.ctx.delete(node)
    run.ctx.delete(claim)
    what = f"claim {_name(claim)}" + (f" (instance {instance_id})" if instance_id else "")
    if released:
        run.ctx.event(run.pool, "Normal", "NodeReleased", f"{what}: released and deleted")
    else:
        run.ctx.warn(run.pool, "InstanceLost", f"{what}: the instance is gone; claim deleted")


def _offered(shape: NodeShape) -> dict[str, Any]:
    """What a node of `shape` offers, as a claim's spec says it."""
    return {
        "instanceType": shape.instance_type,
        "tflopsOffered": str(Quantity.from_milli(shape.tflops_milli_per_gpu * shape.gpus)),
        "vramOffered": str(Quantity.from_int(shape.vram_per_gpu * shape.gpus)),
        "gpuDeviceOffered": shape.gpus,
    }


def _create(run: _Pass, action: Action) -> JsonObject | None:
    shape = CATALOG[str(action.detail["instanceType"])]
    provisioner = run.spec.node_manager_config.node_provisioner
    node_class = provisioner.node_class if provisioner else None
    zones = _requirement(run.spec, ZONE_KEY)
    # The first capacity type the pool allows is the one it prefers.
    spot = (_requirement(run.spec, CAPACITY_TYPE_KEY) or ["on-demand"])[0] == "spot"
    spec: dict[str, Any] = {
        **_offered(shape),
        "region": run.vendor.params.default_region,
        "capacityType": "Spot" if spot else "OnDemand",
        "extraParams": dict(run.vendor.params.extra_params),
    }
    if zones:
        spec["zone"] = zones[0]
    if node_class:
        spec["nodeClassRef"] = {"group": GROUP, "kind": "GPUNodeClass", "name": node_class}
    body = {
        "apiVersion": API_VERSION,
        "kind": "GPUNodeClaim",
        "metadata": {"name": action.target, "labels": {POOL_LABEL: run.view.name}},
        "spec": spec,
    }
    try:
        created = run.ctx.create(body)
    except AlreadyExistsError:
        return None  # made by a pass that did not get to record it; its own plan launches it
    run.ctx.event(
        run.pool,
        "Normal",
        "NodeClaimCreated",
        f"claim {action.target} ({shape.instance_type}): {action.reason}",
    )
    run.ctx.write_status(created, {"phase": "Pending"})
    return run.ctx.cache.get("GPUNodeClaim", action.target) or created


def _requirement(spec: GPUPoolSpec, key: str) -> list[str]:
    """The values of the pool's `gpuRequirements` entry `key In [...]`, in order."""
    provisioner = spec.node_manager_config.node_provisioner
    for requirement in provisioner.gpu_requirements if provisioner else ():
        if requirement.key == key and requirement.operator == "In":
            return list(requirement.values)
    return []


def _launch_request(run: _Pass, claim: JsonObject, action: Action) -> LaunchRequest:
    provisioner = run.spec.node_manager_config.node_provisioner
    labels = dict(provisioner.gpu_node_labels if provisioner else {})
    labels[POOL_LABEL] = run.view.name
    types = action.detail.get("instanceTypes") or [text_at(claim, "spec", "instanceType")]
    return LaunchRequest(
        claim=_name(claim),
        pool=run.view.name,
        instance_types=tuple(str(t) for t in types if t),
        capacity_type="spot" if text_at(claim, "spec", "capacityType") == "Spot" else "on-demand",
        zones=tuple(_requirement(run.spec, ZONE_KEY)),
        image_id=_image(run),
        key_pair=run.vendor.params.extra_params.get("keyPairName"),
        instance_profile=run.vendor.params.iam_role,
        labels=labels,
    )


def _image(run: _Pass) -> str | None:
    """The image from the pool's GPUNodeClass (its first osImageSelectorTerms id), else
    `computingVendor.params.extraParams.imageId`; CloudError (naming the GPUNodeClass and
    its field) when the GPUNodeClass cannot be read."""
    provisioner = run.spec.node_manager_config.node_provisioner
    name = provisioner.node_class if provisioner else None
    if name:
        try:
            node_class = GPUNodeClass.model_validate(run.ctx.store.get("GPUNodeClass", name))
        except NotFoundError:
            node_class = None
        except ValidationError as exc:
            issue = issues_from(exc)[0]
            raise CloudError(
                "invalid", "InvalidNodeClass", f"GPUNodeClass {name}: {issue.path}: {issue.message}"
            ) from exc
        except StoreError as exc:
            # The store is down or refused the read: the next attempt may find it.
            raise CloudError("other", "NodeClassUnreadable", f"GPUNodeClass {name}: {exc}") from exc
        for term in node_class.spec.os_image_selector_terms if node_class else ():
            if term.id:
                return term.id
    return run.vendor.params.extra_params.get("imageId")


def _launch(run: _Pass, claim: JsonObject, action: Action) -> None:
    try:
        result = run.provider.launch(_launch_request(run, claim, action))
    except CloudError as error:
        _refused(run, claim, error)
        return
    instance = result.instance
    shape = CATALOG.get(instance.instance_type)
    why = [f"{t}: {reason}" for t, reason in result.passed_over]
    message = "; ".join([*why, f"launched {instance.instance_type} in {instance.zone}"])
    annotations = {
        INSTANCE_ANNOTATION: instance.instance_id,
        LAUNCHED_ANNOTATION: rfc3339(run.now),
        RETRY_ANNOTATION: None,
        ERROR_ANNOTATION: None,
    }
    spec = {**(_offered(shape) if shape else {}), "zone": instance.zone}
    spec["instanceType"] = instance.instance_type
    launched = run.ctx.patch(claim, {"metadata": {"annotations": annotations}, "spec": spec})
    status: dict[str, object] = {
        "phase": "Provisioning",
        "instanceID": instance.instance_id,
        "message": message,
    }
    if shape is not None:
        status["costPerHour"] = str(shape.cost_per_hour)
    run.ctx.write_status(launched, status)
    run.ctx.event(run.pool, "Normal", "InstanceLaunched", f"claim {_name(claim)}: {message}")


def _refused(run: _Pass, claim: JsonObject, error: CloudError) -> None:
    """Record the vendor's refusal on the claim: when to try again, or that it failed."""
    attempts = _attempts(claim) + 1
    annotations: dict[str, str | None] = {
        ATTEMPTS_ANNOTATION: str(attempts),
        ERROR_ANNOTATION: json.dumps(
            {"kind": error.kind, "code": error.code, "message": str(error)}
        ),
        RETRY_ANNOTATION: None,
    }
    if error.retryable:
        delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempts - 1))
        at = run.now + timedelta(seconds=delay)
        annotations[RETRY_ANNOTATION] = rfc3339(at)
        message = f"attempt {attempts} refused: {error}; next attempt at {rfc3339(at)}"
        phase = "Pending"
    else:
        message = f"refused: {error}; delete the claim once the cause is fixed"
        phase = "Failed"
    updated = run.ctx.patch(claim, {"metadata": {"annotations": annotations}})
    run.ctx.write_status(updated, {"phase": phase, "message": message})
    reason = _reason(error)
    run.ctx.warn(run.pool, reason, f"claim {_name(claim)}: {message}")


def _attempts(claim: Mapping[str, Any]) -> int:
    text = _annotations(claim).get(ATTEMPTS_ANNOTATION) or "0"
    return int(text) if text.isdigit() else 0
