"""One scheduling attempt for one pod: PreFilter -> Filter -> Score -> Reserve -> Permit ->
Bind, with what simulate shows (stage counts, scores, a diagnosis) kept cheap until it is
asked for; PreEnqueue, which decides whether a pod is queued at all; and the end of the
attempts that waited at Permit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from tensorfusion.scheduler.best_node import search_best_node
from tensorfusion.scheduler.framework import (
    BIND_ANNOTATIONS,
    BoolArray,
    ClusterView,
    Code,
    CycleState,
    FilterResult,
    ReservePlugin,
    ScoreArray,
    Status,
)
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile
from tensorfusion.scheduler.waiting_pods import WaitingPod

PRE_ENQUEUE = "preEnqueue"
PERMIT = "permit"
RESERVE = "reserve"
BIND = "bind"


@dataclass(frozen=True)
class FilterStage:
    plugin: str
    before: int
    after: int
    skipped: bool = False
    """PreFilter said the plugin has nothing to check for this pod."""


@dataclass(frozen=True)
class Rejection:
    plugin: str
    nodes: BoolArray
    """The nodes this plugin was the first to reject."""
    result: FilterResult


class Verdict(NamedTuple):
    """One plugin's answer at PreEnqueue or Permit (a tuple: Permit records one per pod)."""

    plugin: str
    status: Status
    timeout_s: float | None = None
    """Permit: how long the plugin asked the pod to wait."""


@dataclass(frozen=True)
class PluginScores:
    plugin: str
    weight: int
    raw: ScoreArray
    normalized: ScoreArray


@dataclass
class Outcome:
    """What happened to one pod. `status` is Success with `node` set, or why not."""

    pod: PodInfo
    status: Status
    state: CycleState
    node: str | None = None
    node_index: int = -1
    annotations: Mapping[str, str] = field(default_factory=dict)
    stages: list[FilterStage] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    feasible: BoolArray | None = None
    scores: list[PluginScores] = field(default_factory=list)
    total: ScoreArray | None = None
    nodes_total: int = 0
    pre_enqueue: list[Verdict] = field(default_factory=list)
    permit: list[Verdict] = field(default_factory=list)
    stopped_at: str = ""
    """PRE_ENQUEUE, RESERVE, PERMIT or BIND when a plugin there kept the pod from being
    bound, whatever the nodes were found to offer: that plugin's reason is the answer, not
    the other nodes' filter rejections."""

    @property
    def scheduled(self) -> bool:
        return self.node is not None

    def diagnosis(self) -> list[dict[str, Any]]:
        """Why nodes were rejected: one entry per (plugin, reason) with its node count,
        largest first ("312 nodes: insufficient VRAM on every GPU")."""
        entries: list[dict[str, Any]] = []
        overall = self.stopped_at or not self.rejections
        if not self.status.ok and self.status.code is not Code.ERROR and overall:
            for reason in self.status.reasons:
                entries.append(
                    {"plugin": self.status.plugin, "nodes": self.nodes_total, "reason": reason}
                )
        for rejection in [] if self.stopped_at else self.rejections:
            reasons, codes = rejection.result.reason_table()
            if codes is None:
                count = int(np.count_nonzero(rejection.nodes))
                entries.append({"plugin": rejection.plugin, "nodes": count, "reason": reasons[0]})
                continue
            counts = np.bincount(codes[rejection.nodes], minlength=len(reasons))
            for code in np.flatnonzero(counts).tolist():
                entries.append(
                    {
                        "plugin": rejection.plugin,
                        "nodes": int(counts[code]),
                        "reason": reasons[code],
                    }
                )
        entries.sort(key=lambda entry: (-entry["nodes"], entry["plugin"], entry["reason"]))
        return entries

    def summary(self) -> str:
        """One line for events and logs."""
        if self.scheduled:
            return f"bound to {self.node}"
        if self.stopped_at:
            reasons = "; ".join(self.status.reasons)
            return f"{self.status.plugin} ({self.stopped_at}): {reasons}"
        parts = [f"{e['nodes']} nodes: {e['reason']}" for e in self.diagnosis()]
        text = "; ".join(parts) or "; ".join(self.status.reasons)
        return f"0/{self.nodes_total} nodes are available: {text}"


def pre_enqueue(profile: Profile, pod: PodInfo) -> list[Verdict]:
    """Whether the pod may enter the scheduling queue: each PreEnqueue plugin's verdict, up
    to the first that keeps the pod out (the plugins after it do not run)."""
    verdicts = []
    for plugin in profile.pre_enqueue:
        status = plugin.pre_enqueue(pod)
        verdicts.append(Verdict(plugin.name, status))
        if not status.ok:
            break
    return verdicts


def kept_out(cluster: ClusterView, pod: PodInfo, verdicts: list[Verdict]) -> Outcome | None:
    """The outcome of a pod that PreEnqueue keeps out of the queue; None when it is let in."""
    if not verdicts or verdicts[-1].status.ok:
        return None
    last = verdicts[-1]
    present = int(np.count_nonzero(cluster.nodes.present))
    return Outcome(
        pod,
        replace(last.status, plugin=last.status.plugin or last.plugin),
        CycleState(),
        nodes_total=present,
        pre_enqueue=verdicts,
        stopped_at=PRE_ENQUEUE,
    )


def schedule_one(
    profile: Profile,
    cluster: ClusterView,
    pod: PodInfo,
    *,
    commit: bool = True,
    full_scan: bool = False,
) -> Outcome:
    """Run the pipeline for one pod. With commit=False (simulate) Reserve is undone and
    Bind skipped, so the cluster is left as it was. A pod a Permit plugin asks to wait
    keeps its reservation in `profile.waiting` (status Wait) when committing; simulate
    reports where it would go.

    When committing, the best node is searched for first (best_node), which visits only
    the nodes that can still win and leaves the outcome's per-node arrays (stages,
    feasible, scores, total) empty; where the search cannot vouch for its answer, and with
    full_scan or commit=False, every node is filtered and scored. Both choose the same
    node."""
    state = CycleState()
    present = int(np.count_nonzero(cluster.nodes.present))
    outcome = Outcome(pod, Status.success(), state, nodes_total=present)
    for plugin in profile.pre_filter:
        status = plugin.pre_filter(state, pod, cluster)
        if status.code is Code.SKIP:
            state.skipped.add(plugin.name)
        elif not status.ok:
            outcome.status = status
            return outcome
    best = None if full_scan or not commit else search_best_node(profile, cluster, state, pod)
    if best is None:
        if not _filter(profile, cluster, outcome):
            plugins = tuple(dict.fromkeys(r.plugin for r in outcome.rejections))
            outcome.status = Status(Code.UNSCHEDULABLE, ("no node fits",), ", ".join(plugins))
            return outcome
        best = _score(profile, cluster, outcome)
    reserved = []
    for reserver in profile.reserve:
        if reserver.name in state.skipped:
            continue
        status = reserver.reserve(state, pod, cluster, best)
        reserved.append(reserver)
        if not status.ok:
            _unreserve(reserved, state, pod, cluster, best)
            outcome.status, outcome.stopped_at = status, RESERVE
            return outcome
    cluster.nodes.add_pod(best, pod)
    timeouts = _permit(profile, cluster, outcome, best) if profile.permit else {}
    if timeouts is None:
        _release(cluster, outcome, reserved, best)
        return outcome
    if not commit:
        _place(cluster, outcome, best)
        _release(cluster, outcome, reserved, best)
        return outcome
    if timeouts:
        profile.waiting.add(WaitingPod(outcome, best, reserved), timeouts)
        outcome.status = Status.wait(", ".join(timeouts), "waiting to be allowed")
        outcome.stopped_at = PERMIT
        return outcome
    _bind(profile, cluster, outcome, reserved, best)
    return outcome


def settle_waiting(profile: Profile, cluster: ClusterView) -> list[Outcome]:
    """The attempts that waited at Permit and are now decided: bound when every plugin
    allowed the pod, unreserved when one rejected it or a wait timed out."""
    outcomes = []
    for waiting in profile.waiting.settled():
        outcome = waiting.outcome
        if waiting.rejection is None:
            outcome.status, outcome.stopped_at = Status.success(), ""
            _bind(profile, cluster, outcome, waiting.reserved, waiting.node)
        else:
            release_waiting(cluster, waiting)
            outcome.status = waiting.rejection
        outcomes.append(outcome)
    return outcomes


def release_waiting(cluster: ClusterView, waiting: WaitingPod) -> None:
    """Undo the reservation of a pod that waited at Permit (rejected, or gone meanwhile)."""
    _release(cluster, waiting.outcome, waiting.reserved, waiting.node)


def _permit(
    profile: Profile, cluster: ClusterView, outcome: Outcome, node: int
) -> dict[str, float] | None:
    """Run the Permit plugins: the timeouts of those that ask the pod to wait, or None when
    one denies it (the plugins after it do not run)."""
    state, pod = outcome.state, outcome.pod
    timeouts: dict[str, float] = {}
    for plugin in profile.permit:
        if plugin.name in state.skipped:
            outcome.permit.append(Verdict(plugin.name, Status.skip()))
            continue
        status, timeout = plugin.permit(state, pod, cluster, node)
        if status.code is Code.WAIT:
            timeouts[plugin.name] = timeout
            outcome.permit.append(Verdict(plugin.name, status, timeout))
            continue
        outcome.permit.append(Verdict(plugin.name, status))
        if not status.ok:
            outcome.status = replace(status, plugin=status.plugin or plugin.name)
            outcome.stopped_at = PERMIT
            return None
    return timeouts


def _bind(
    profile: Profile,
    cluster: ClusterView,
    outcome: Outcome,
    reserved: list[ReservePlugin],
    node: int,
) -> None:
    for binder in profile.bind:
        status = binder.bind(outcome.state, outcome.pod, cluster, node)
        if not status.ok:
            _release(cluster, outcome, reserved, node)
            outcome.status, outcome.stopped_at = status, BIND
            return
    _place(cluster, outcome, node)


def _place(cluster: ClusterView, outcome: Outcome, node: int) -> None:
    outcome.node = cluster.nodes.names[node]
    outcome.node_index = node
    outcome.annotations = dict(outcome.state.data.get(BIND_ANNOTATIONS, {}))


def _release(
    cluster: ClusterView, outcome: Outcome, reserved: list[ReservePlugin], node: int
) -> None:
    cluster.nodes.remove_pod(node, outcome.pod)
    _unreserve(reserved, outcome.state, outcome.pod, cluster, node)


def _filter(profile: Profile, cluster: ClusterView, outcome: Outcome) -> int:
    """Run the Filter plugins in order, each on the nodes still standing; returns how many
    nodes are left. A node's reason is that of the first plugin to reject it."""
    state, pod = outcome.state, outcome.pod
    candidates = cluster.nodes.present.copy()
    remaining = int(np.count_nonzero(candidates))
    for plugin in profile.filter:
        if plugin.name in state.skipped:
            outcome.stages.append(FilterStage(plugin.name, remaining, remaining, skipped=True))
            continue
        result = plugin.filter(state, pod, cluster, candidates)
        kept = candidates & result.passed
        after = int(np.count_nonzero(kept))
        if after != remaining:  # most plugins reject nothing: skip the bookkeeping then
            outcome.rejections.append(Rejection(plugin.name, candidates & ~kept, result))
            candidates = kept
        outcome.stages.append(FilterStage(plugin.name, remaining, after))
        remaining = after
        if not remaining:
            break
    outcome.feasible = candidates
    return remaining


def _score(profile: Profile, cluster: ClusterView, outcome: Outcome) -> int:
    """Weighted sum of the normalised scores; the best feasible node (lowest index on a
    tie, so that results are reproducible)."""
    state, pod, feasible = outcome.state, outcome.pod, outcome.feasible
    assert feasible is not None
    total = np.zeros(len(feasible), dtype=np.int64)
    for plugin, weight in profile.score:
        if plugin.name in state.skipped:
            continue
        raw = plugin.score(state, pod, cluster, feasible)
        normalized = plugin.normalize(raw, feasible)
        outcome.scores.append(PluginScores(plugin.name, weight, raw, normalized))
        total += weight * normalized
    outcome.total = total
    return int(np.argmax(np.where(feasible, total, np.iinfo(np.int64).min)))


def _unreserve(
    reserved: list[Any], state: CycleState, pod: PodInfo, cluster: ClusterView, node: int
) -> None:
    for plugin in reversed(reserved):
        plugin.unreserve(state, pod, cluster, node)
