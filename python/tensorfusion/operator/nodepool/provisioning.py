"""Provisioning: the nodes a pool adds for its pending pods and its warm and minimum
capacity, under its maximum and its daily budget, as Karpenter NodeClaims (provisioningMode
Karpenter) or instances launched through the cloud vendor's API (Provisioned); a pool of
existing nodes (AutoSelect) provisions nothing.

The pool's status also carries what its provisioned nodes cost per hour, an estimate at
on-demand prices (spot capacity costs less), and, in `budgetExceeded`, whether that cost
over a day already passes `nodeProvisioner.budget.budgetPerDay`. Either limit held back is
the CapacityCapped condition (reason MaxResources or BudgetPerDay) and a Warning Event.
Whatever `budgetExceedStrategy` says, a budget only holds new nodes back: AlertOnly and
AlertAndTerminateVM alike terminate nothing here, and the PoolBudgetExceeded alert fires from
the cost and budget the allocation metrics record."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tensorfusion.api.gpu_capacity import checked_quantity
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import CAPACITY_CAPPED_CONDITION, GPUPoolSpec
from tensorfusion.errors import ConfigError, FleetError, StoreError
from tensorfusion.operator.nodepool import karpenter, provisioned
from tensorfusion.operator.nodepool.capacity_plan import (
    ScaleDecision,
    budget_per_day,
    scale_decision,
)
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.instance_types import CATALOG, shapes_for
from tensorfusion.operator.nodepool.plan import Action, PartPlan, PoolCondition
from tensorfusion.operator.nodepool.view import PoolView

if TYPE_CHECKING:
    from tensorfusion.operator.reconcilers.context import Context

PART = provisioned.PART
PROVISIONING_CONDITION = provisioned.CONDITION
CREATE_NODECLAIM = provisioned.CREATE_NODECLAIM
NOT_CAPPED = PoolCondition(CAPACITY_CAPPED_CONDITION, "False", "WithinLimits", "")
_CAPPED_REASONS = {"maxResources": "MaxResources", "budgetPerDay": "BudgetPerDay"}


def _capped(decision: ScaleDecision) -> PoolCondition:
    if decision.capped is None or decision.capped_by is None:
        return NOT_CAPPED
    return PoolCondition(
        CAPACITY_CAPPED_CONDITION, "True", _CAPPED_REASONS[decision.capped_by], decision.capped
    )


def _not_provisioning(reason: str, message: str) -> PartPlan:
    return PartPlan(
        PART,
        conditions=(PoolCondition(PROVISIONING_CONDITION, "False", reason, message), NOT_CAPPED),
    )


def _unfit_note(decision: ScaleDecision) -> str:
    if not decision.unfit:
        return ""
    return f"; no instance type of the pool holds {', '.join(decision.unfit)}"


def _karpenter_plan(view: PoolView, spec: GPUPoolSpec, now: datetime) -> PartPlan:
    provisioner = spec.node_manager_config.node_provisioner
    if provisioner is None or provisioner.karpenter_node_class_ref is None:
        return _not_provisioning(
            "NoNodeClass",
            "nodeProvisioner.karpenterNodeClassRef: missing, so no NodeClaim can be made",
        )
    shapes = shapes_for(spec)
    on_the_way, settles = karpenter.in_flight(view, now)
    decision = scale_decision(view, shapes, on_the_way, provisioned_cost(view))
    taken = {text_at(c, "metadata", "name") or "" for c in view.node_claims}
    names = karpenter.claim_names(view.name, taken, len(decision.add))
    actions = tuple(
        Action(
            CREATE_NODECLAIM,
            name,
            reason,
            detail={"instanceType": shape.instance_type, "gpus": shape.gpus},
        )
        for name, shape, reason in zip(names, decision.add, decision.reasons, strict=True)
    )
    if actions:
        condition = PoolCondition(
            PROVISIONING_CONDITION,
            "True",
            "NodesClaimed",
            f"claiming {len(actions)} node(s) "
            f"({', '.join(a.detail['instanceType'] for a in actions)})" + _unfit_note(decision),
        )
    elif on_the_way:
        condition = PoolCondition(
            PROVISIONING_CONDITION,
            "True",
            "NodesOnTheWay",
            f"{len(on_the_way)} claimed node(s) not registered yet" + _unfit_note(decision),
        )
    else:
        condition = PoolCondition(
            PROVISIONING_CONDITION,
            "False",
            "CapacitySufficient",
            "no node to add" + _unfit_note(decision),
        )
    return PartPlan(PART, actions, (condition, _capped(decision)), wake_at=settles)


def _provisioned_plan(
    view: PoolView, spec: GPUPoolSpec, now: datetime, config: NodePoolConfig
) -> PartPlan:
    shapes = shapes_for(spec)
    decision = scale_decision(
        view, shapes, provisioned.provisioned_in_flight(view, now), provisioned_cost(view)
    )
    plan = provisioned.plan_provisioned(view, decision, shapes, now, config)
    return replace(plan, conditions=(*plan.conditions, _capped(decision)))


def provisioned_cost(view: PoolView) -> Decimal:
    """Estimated dollars per hour of the pool's nodes, running and on their way, at on-demand
    prices: its NodeClaims' instance types, plus what its GPUNodeClaims record of their
    instances, or, for one not launched yet, its instance type's price."""
    total = karpenter.claims_cost(view)
    for claim in view.gpu_node_claims:
        cost = text_at(claim, "status", "costPerHour")
        if cost is not None:
            name = f"GPUNodeClaim/{text_at(claim, 'metadata', 'name')}"
            exact = checked_quantity(name, "status.costPerHour", cost).exact
            total += Decimal(exact.numerator) / exact.denominator
        elif provisioned.claim_phase(claim, view) == "Pending" and (
            shape := CATALOG.get(text_at(claim, "spec", "instanceType") or "")
        ):
            total += shape.cost_per_hour
    return total


def budget_exceeded(spec: GPUPoolSpec, cost_per_hour: Decimal) -> str:
    """What `status.budgetExceeded` says: how `cost_per_hour` over a day passes the pool's
    budgetPerDay, or "" while it does not (or the pool sets no budget)."""
    budget = budget_per_day(spec)
    if budget is None or cost_per_hour * 24 <= budget[1]:
        return ""
    per_day = format((cost_per_hour * 24).normalize(), "f")
    return (
        f"budgetPerDay {budget[0]} exceeded: {format(cost_per_hour.normalize(), 'f')} "
        f"per hour is {per_day} per day"
    )


class _Part:
    name: str = PART
    condition_types: tuple[str, ...] = (PROVISIONING_CONDITION, CAPACITY_CAPPED_CONDITION)

    def plan(self, view: PoolView, now: datetime, config: NodePoolConfig) -> PartPlan:
        spec = view.spec
        if spec is None:
            return PartPlan(self.name)
        mode = spec.node_manager_config.provisioning_mode
        if mode == "AutoSelect":
            return _not_provisioning(
                "ExistingNodes", "provisioningMode AutoSelect: the pool uses existing nodes"
            )
        try:
            if mode == "Karpenter":
                return _karpenter_plan(view, spec, now)
            return _provisioned_plan(view, spec, now, config)
        except (ConfigError, FleetError) as exc:
            return _not_provisioning("InvalidConfiguration", str(exc))

    def apply(self, ctx: Context, view: PoolView, plan: PartPlan) -> None:
        spec = view.spec
        if spec is None or spec.node_manager_config.provisioning_mode == "AutoSelect":
            return
        if spec.node_manager_config.provisioning_mode == "Provisioned":
            provisioned.apply_provisioned(ctx, view, plan)
        else:
            _create_claims(ctx, view, spec, plan)
        capped = next((c for c in plan.conditions if c.type == CAPACITY_CAPPED_CONDITION), None)
        if capped is not None and capped.status == "True":
            ctx.warn(view.pool, "CapacityCapped", capped.message)
        _write_cost(ctx, view, spec)


def _create_claims(ctx: Context, view: PoolView, spec: GPUPoolSpec, plan: PartPlan) -> None:
    due = [a for a in plan.due() if a.kind == CREATE_NODECLAIM]
    shapes = shapes_for(spec) if due else []
    for action in due:
        shape = CATALOG[action.detail["instanceType"]]
        claim = karpenter.node_claim(view, spec, action.target, shape, shapes)
        try:
            ctx.create(claim)
        except StoreError as exc:
            ctx.warn(view.pool, "NodeClaimNotCreated", f"NodeClaim {action.target}: {exc}")
            continue
        ctx.event(
            view.pool,
            "Normal",
            "NodeClaimCreated",
            f"NodeClaim {action.target} ({shape.instance_type}) {action.reason}",
        )


def _write_cost(ctx: Context, view: PoolView, spec: GPUPoolSpec) -> None:
    # The claims as the cache holds them now, with those just made.
    now_claimed = replace(
        view,
        node_claims=ctx.cache.children("NodeClaim", view.name),
        gpu_node_claims=ctx.cache.children("GPUNodeClaim", view.name),
    )
    try:
        cost = provisioned_cost(now_claimed)
    except FleetError as exc:
        ctx.warn(view.pool, "CostUnknown", str(exc))
        return
    exceeded = budget_exceeded(spec, cost)
    if exceeded:
        ctx.warn(view.pool, "BudgetExceeded", exceeded)
    pool = ctx.cache.get("GPUPool", view.name) or view.pool
    ctx.write_status(
        pool, {"costPerHour": format(cost.normalize(), "f"), "budgetExceeded": exceeded}
    )


PROVISIONING = _Part()
