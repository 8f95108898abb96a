"""One scheduling attempt for one pod: PreFilter -> Filter -> Score -> Reserve -> Bind, with
what simulate shows (stage counts, scores, a diagnosis) kept cheap until it is asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensorfusion.scheduler.framework import (
    BIND_ANNOTATIONS,
    BoolArray,
    ClusterView,
    Code,
    CycleState,
    FilterResult,
    ScoreArray,
    Status,
)
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile


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

    @property
    def scheduled(self) -> bool:
        return self.node is not None

    def diagnosis(self) -> list[dict[str, Any]]:
        """Why nodes were rejected: one entry per (plugin, reason) with its node count,
        largest first ("312 nodes: insufficient VRAM on every GPU")."""
        entries: list[dict[str, Any]] = []
        if not self.status.ok and self.status.code is not Code.ERROR and not self.rejections:
            for reason in self.status.reasons:
                entries.append(
                    {"plugin": self.status.plugin, "nodes": self.nodes_total, "reason": reason}
                )
        for rejection in self.rejections:
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
        parts = [f"{e['nodes']} nodes: {e['reason']}" for e in self.diagnosis()]
        text = "; ".join(parts) or "; ".join(self.status.reasons)
        return f"0/{self.nodes_total} nodes are available: {text}"


def schedule_one(
    profile: Profile, cluster: ClusterView, pod: PodInfo, *, commit: bool = True
) -> Outcome:
    """Run the pipeline for one pod. With commit=False (simulate) Reserve is undone and
    Bind skipped, so the cluster is left as it was."""
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
            outcome.status = status
            return outcome
    cluster.nodes.add_pod(best, pod)
    if commit:
        for binder in profile.bind:
            status = binder.bind(state, pod, cluster, best)
            if not status.ok:
                cluster.nodes.remove_pod(best, pod)
                _unreserve(reserved, state, pod, cluster, best)
                outcome.status = status
                return outcome
    outcome.node = cluster.nodes.names[best]
    outcome.node_index = best
    outcome.annotations = dict(state.data.get(BIND_ANNOTATIONS, {}))
    if not commit:
        cluster.nodes.remove_pod(best, pod)
        _unreserve(reserved, state, pod, cluster, best)
    return outcome


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
