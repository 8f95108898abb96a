"""Compaction (`nodeManagerConfig.nodeCompaction`): once every `period`, the pool's nodes that
hold no TensorFusion worker are released, as long as the pool keeps its minimum total
capacity (`capacityConfig.minResources`) and its warm free capacity (`warmResources`).

A node is never released when it is marked do-not-disrupt, holds TensorFusion workers or
pods with `nvidia.com/gpu` (a DaemonSet's too: DaemonSet pods are not workers, but the GPU
they hold is in use), or is younger than one period (it may have been added for work
that has not arrived yet). The others go smallest first (by capacity TFLOPS, then VRAM, then
name), so that the most nodes can go; each one chosen lowers the totals the next is checked
against. Only minResources' and warmResources' TFLOPS and VRAM are checked. A node whose GPUs
have not reported their capacity (or report it unreadably) is kept too. One whose claim is
being deleted or is marked for release is leaving: counted in no total, not released again.
One that no claim names is not the pool's own (see `release.claim_of`): counted in the totals,
never released, and named in the condition.

The last run is recorded in the pool's annotation `tensor-fusion.ai/last-compaction` (status
is output; `status.lastCompactionTime` repeats it for users). With `nodeCompaction.defrag`
enabled, the plan also proposes worker moves that would free whole nodes (never carried out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from tensorfusion.api.duration import parse_duration
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import GPUPoolSpec
from tensorfusion.errors import FleetError
from tensorfusion.operator.nodepool.capacity_plan import pending_pods
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.defrag_plan import defrag_moves
from tensorfusion.operator.nodepool.plan import Action, PartPlan, PoolCondition
from tensorfusion.operator.nodepool.pool_capacity import Amounts, at_least, bound, gpu_room, summed
from tensorfusion.operator.nodepool.release import claim_of, may_disrupt, release_node, releasing
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.operator.reconcilers.cache import owner_name
from tensorfusion.scheduler.allocator import TERMINAL_PHASES
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.store.timestamps import parse_rfc3339, parse_rfc3339_or_none, rfc3339

if TYPE_CHECKING:
    from tensorfusion.operator.reconcilers.context import Context

CONDITION = "Compaction"
LAST_COMPACTION_ANNOTATION = "tensor-fusion.ai/last-compaction"
ACTION = "compact-node"
HELD = "HeldForPendingPods"
EVENT_REASON = "NodeCompacted"

DO_NOT_DISRUPT = "do-not-disrupt"
TF_WORKERS = "with TensorFusion workers"
GPU_PODS = "with nvidia.com/gpu pods"
YOUNG = "younger than the period"
UNREADABLE = "with unreadable GPU capacity"
UNREPORTED = "whose GPUs have not reported their capacity"
FOR_MIN = "for minResources"
FOR_WARM = "for warmResources"
KEPT_ORDER = (
    DO_NOT_DISRUPT,
    TF_WORKERS,
    GPU_PODS,
    YOUNG,
    UNREPORTED,
    UNREADABLE,
    FOR_MIN,
    FOR_WARM,
)
"""The order reasons for keeping a node are checked and listed in."""


@dataclass
class Selection:
    """The nodes one run would release, and what became of the others."""

    chosen: list[str] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)
    """Per reason (KEPT_ORDER), how many nodes it kept."""
    releasing: list[str] = field(default_factory=list)
    """Nodes whose claim is being deleted or is marked: leaving, counted in no total."""
    not_owned: list[str] = field(default_factory=list)
    """Nodes no claim names: counted in the totals, never released."""


class _Part:
    name: str = "compaction"
    condition_types: tuple[str, ...] = (CONDITION,)

    def plan(self, view: PoolView, now: datetime, config: NodePoolConfig) -> PartPlan:
        spec = view.spec
        compaction = spec.node_manager_config.node_compaction if spec else None
        if spec is None or compaction is None:
            return self._say("False", "Disabled", "nodeManagerConfig.nodeCompaction is not set")
        mode = spec.node_manager_config.provisioning_mode
        if mode == "AutoSelect":
            return self._say(
                "False",
                "NotOwned",
                "provisioningMode AutoSelect: the pool selects nodes it does not own, "
                "so it releases none",
            )
        period = parse_duration(compaction.period)
        if period <= timedelta(0):
            return self._say("False", "Disabled", "nodeCompaction.period must be more than 0")
        waiting = pending_pods(view)
        if waiting:
            # Provisioning would claim a node right back for them: no node churns meanwhile.
            return self._say(
                "True",
                HELD,
                f"{len(waiting)} pods of the pool wait for GPUs: no node is released while they do",
            )
        last = last_compaction(view.pool)
        runs_now = last is None or now >= last + period
        next_run = (now if runs_now or last is None else last) + period
        selection = select_nodes(view, spec, now, period)
        actions = [
            Action(
                ACTION,
                node,
                "no TensorFusion workers; the pool keeps its minimum and warm capacity without it",
                state="due" if runs_now else "waiting",
                at=None if runs_now else next_run,
            )
            for node in selection.chosen
        ]
        if compaction.defrag is not None and compaction.defrag.enabled:
            leaving = {*selection.chosen, *selection.releasing}
            actions += defrag_moves(view, leaving, compaction.defrag.utilization_threshold_percent)
        condition = _condition(selection, runs_now, next_run, actions)
        return PartPlan(self.name, tuple(actions), (condition,), wake_at=next_run)

    def apply(self, ctx: Context, view: PoolView, plan: PartPlan) -> None:
        compaction = view.spec.node_manager_config.node_compaction if view.spec else None
        if compaction is None or plan.wake_at is None:
            return
        # A run plans the next one a period on; a plan that waits keeps the recorded run.
        ran_at = plan.wake_at - parse_duration(compaction.period)
        if ran_at == last_compaction(view.pool):
            return
        for action in plan.due():
            done = release_node(ctx, view, action.target, ran_at)
            if done is not None:
                ctx.event(view.pool, "Normal", EVENT_REASON, f"node {action.target}: {done}")
        stamp = rfc3339(ran_at)
        pool = ctx.cache.get("GPUPool", view.name) or view.pool
        pool = ctx.patch(pool, {"metadata": {"annotations": {LAST_COMPACTION_ANNOTATION: stamp}}})
        ctx.write_status(pool, {"lastCompactionTime": stamp})

    def _say(self, status: Literal["True", "False"], reason: str, message: str) -> PartPlan:
        return PartPlan(self.name, conditions=(PoolCondition(CONDITION, status, reason, message),))


COMPACTION = _Part()


def last_compaction(pool: Mapping[str, Any]) -> datetime | None:
    """When the pool was last compacted, by its annotation; None if never (or unreadable,
    which a run then rewrites)."""
    return parse_rfc3339_or_none(
        text_at(pool, "metadata", "annotations", LAST_COMPACTION_ANNOTATION)
    )


def select_nodes(view: PoolView, spec: GPUPoolSpec, now: datetime, period: timedelta) -> Selection:
    """The nodes a run at `now` releases (see the module's rules), in release order."""
    selection = Selection()
    capacity: dict[str, Amounts] = {}
    free: dict[str, Amounts] = {}
    candidates: list[str] = []
    for node in sorted(view.gpus):
        node_obj = view.nodes.get(node)
        claim = claim_of(view, node) if node_obj is not None else None
        if claim is not None and releasing(claim):
            selection.releasing.append(node)
            continue
        if node_obj is not None and claim is None:
            selection.not_owned.append(node)
        try:
            amounts = _node_amounts(view.gpus[node])
        except FleetError:
            if claim is not None:
                selection.kept[UNREADABLE] += 1
            continue
        if amounts is not None:
            capacity[node], free[node] = amounts
        if node_obj is None or claim is None:
            continue  # its GPUs count; without a Node and its claim there is nothing to release
        reason = _kept_because(node_obj, view.pods.get(node, []), now, period)
        if reason is None and amounts is None:
            # What it holds is unknown, so what the pool loses without it is too.
            reason = UNREPORTED
        if reason is not None:
            selection.kept[reason] += 1
        else:
            candidates.append(node)
    total = summed(capacity.values())
    available = summed(free.values())
    config = spec.capacity_config
    least, warm = bound(config.min_resources), bound(config.warm_resources)
    for node in sorted(candidates, key=lambda n: (*capacity[n], n)):
        after_total, after_free = total.minus(capacity[node]), available.minus(free[node])
        if not at_least(after_total, least):
            selection.kept[FOR_MIN] += 1
        elif not at_least(after_free, warm):
            selection.kept[FOR_WARM] += 1
        else:
            selection.chosen.append(node)
            total, available = after_total, after_free
    return selection


def _kept_because(
    node: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime, period: timedelta
) -> str | None:
    """Why the node may not be released, or None when it may."""
    if not may_disrupt(node):
        return DO_NOT_DISRUPT
    running = [pod for pod in pods if text_at(pod, "status", "phase") not in TERMINAL_PHASES]
    held = [(PodInfo.from_dict(pod), owner_name(pod, "DaemonSet") is not None) for pod in running]
    # A DaemonSet's pod runs on every node, so it is no worker to keep this one for; a GPU it
    # holds is in use all the same.
    if any(
        not daemon and (info.workload is not None or info.workload_problems)
        for info, daemon in held
    ):
        return TF_WORKERS
    if any(info.native_gpus for info, _ in held):
        return GPU_PODS
    created = text_at(node, "metadata", "creationTimestamp")
    try:
        young = created is None or parse_rfc3339(created) + period > now
    except ValueError:
        young = True  # an age that cannot be read is not old enough
    return YOUNG if young else None


def _node_amounts(gpus: Sequence[Mapping[str, Any]]) -> tuple[Amounts, Amounts] | None:
    """(capacity, free) of a node's GPUs summed; None when it has no GPU or one has not
    reported what is available on it yet."""
    rooms = [gpu_room(gpu) for gpu in gpus]
    frees = [free for _, free in rooms if free is not None]
    if not rooms or len(frees) < len(rooms):
        return None
    return summed(capacity for capacity, _ in rooms), summed(frees)


def _condition(
    selection: Selection, runs_now: bool, next_run: datetime, actions: list[Action]
) -> PoolCondition:
    """Compacted while the nodes a run released are leaving (and in the run itself), Idle
    otherwise; the message says which nodes go, which stay and why, and when the next run is."""
    chosen = ", ".join(selection.chosen)
    notes = []
    if runs_now and selection.chosen:
        notes.append(f"released {len(selection.chosen)} nodes ({chosen})")
    elif selection.chosen:
        notes.append(f"would release {chosen}")
    if selection.releasing:
        notes.append(f"leaving: {', '.join(selection.releasing)}")
    if selection.not_owned:
        notes.append(f"not owned (no claim names them): {', '.join(selection.not_owned)}")
    compacted = (runs_now and bool(selection.chosen)) or bool(selection.releasing)
    if not notes:
        notes.append("no node to release")
    kept = ", ".join(
        f"{selection.kept[reason]} {reason}" for reason in KEPT_ORDER if selection.kept[reason]
    )
    if kept:
        notes.append(f"kept: {kept}")
    moves = [a for a in actions if a.kind != ACTION]
    if moves:
        freed = {a.detail["frees"] for a in moves}
        notes.append(f"{len(moves)} worker moves proposed to free {len(freed)} nodes")
    notes.append(f"next compaction at {rfc3339(next_run)}")
    return PoolCondition(CONDITION, "True", "Compacted" if compacted else "Idle", "; ".join(notes))
