"""The rolling update of the node agents on a pool's nodes, governed by the pool's
`nodePoolRollingUpdatePolicy`.

The agents' DaemonSet updates `OnDelete`: Kubernetes makes a node's agent from the new
template only once its old pod is deleted, so this part decides when each node's agent
restarts. A node is outdated while its agent pod carries another `controller-revision-hash`
than the DaemonSet's newest ControllerRevision. A batch deletes the outdated agent pods of
ceil(batchPercentage% of the pool's nodes) nodes (at least one; batchPercentage 0 updates
none, as the model's advice on it says), in node-name order; batches
start `batchInterval` apart, only inside a maintenance window (see `maintenance_window`; with
no `includes` the window is always open), and only once every node of the earlier batches
runs a Ready agent of the new revision. A restarted agent has AGENT_READY_GRACE from its
batch's start to become Ready: until then the update waits for it quietly; after it, the
update reports AgentNotReady with a Warning, also when that agent was in the last batch.

`maxDuration` caps each run of batches: a run keeps the window its first batch ran in (with
`includes`, the window lasts maxDuration from its opening, and later matches do not lengthen
it; without them, maxDuration counts from the update's first batch) and ends with it. The
update then stops with AgentRollout=False MaxDurationExceeded and resumes in the first window
that opens after that end, with a fresh maxDuration; with no `includes` there is no next
window, so it stays stopped until the template changes again or maxDuration is raised.

A pool with no rolling update policy is updated with the policy's defaults (every node at
once, at any time), as the DaemonSet's own RollingUpdate would. The update's record (its
revision, the window its batches run in, each batch's start and nodes) is the pool's
`tensor-fusion.ai/agent-rollout` annotation: the controller's memory, so that a new leader
continues where the last one stopped."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from tensorfusion.api.duration import parse_duration
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import NodeRollingUpdatePolicy
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.maintenance_window import CronWindow
from tensorfusion.operator.nodepool.plan import Action, ActionState, PartPlan, PoolCondition
from tensorfusion.operator.nodepool.view import PoolView, pod_ready, revision_of
from tensorfusion.store.objects import JsonObject
from tensorfusion.store.timestamps import parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from tensorfusion.operator.reconcilers.context import Context

log = logging.getLogger(__name__)

ROLLOUT_ANNOTATION = "tensor-fusion.ai/agent-rollout"
CONDITION = "AgentRollout"
ACTION = "update-agents"
UP_TO_DATE = "UpToDate"
UPDATING = "Updating"
NO_REVISION = "NoAgentRevision"
AUTO_UPDATE_DISABLED = "AutoUpdateDisabled"
AGENT_NOT_READY = "AgentNotReady"
MAX_DURATION_EXCEEDED = "MaxDurationExceeded"
INVALID_WINDOW = "InvalidWindow"
BATCH_EVENT = "AgentUpdateBatch"
_WARNINGS = (AGENT_NOT_READY, MAX_DURATION_EXCEEDED, INVALID_WINDOW)

AGENT_READY_GRACE = timedelta(minutes=5)
"""How long a restarted agent may take to become Ready before it counts as failing. Pulling
its image and starting it takes far longer than the default batchInterval (1s), so without it
every healthy update would report AgentNotReady and warn about agents that are only starting."""
_GRACE_TEXT = f"{int(AGENT_READY_GRACE.total_seconds()) // 60}m"


@dataclass(frozen=True)
class Batch:
    start: datetime
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class RolloutRecord:
    """What the update to `revision` has done so far."""

    revision: str
    window_start: datetime | None = None
    """When the window of the update's current run opened: the window the run's first batch
    ran in (no `includes`: the update's first batch's start); maxDuration counts from here."""
    batches: tuple[Batch, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "revision": self.revision,
                "windowStart": None if self.window_start is None else rfc3339(self.window_start),
                "batches": [
                    {"start": rfc3339(b.start), "nodes": list(b.nodes)} for b in self.batches
                ],
            },
            separators=(",", ":"),
        )

    def rolled(self) -> set[str]:
        return {node for batch in self.batches for node in batch.nodes}


def rollout_record(pool: Mapping[str, Any], revision: str) -> RolloutRecord:
    """The pool's record of the update to `revision`; a fresh one when the pool records none,
    or records an update to another revision."""
    text = text_at(pool, "metadata", "annotations", ROLLOUT_ANNOTATION)
    if text is None:
        return RolloutRecord(revision)
    try:
        body = json.loads(text)
        if body["revision"] != revision:
            return RolloutRecord(revision)
        start = body["windowStart"]
        return RolloutRecord(
            revision,
            window_start=None if start is None else parse_rfc3339(start),
            batches=tuple(
                Batch(parse_rfc3339(b["start"]), tuple(str(n) for n in b["nodes"]))
                for b in body["batches"]
            ),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        # Only this controller writes it; a damaged one restarts the update's bookkeeping.
        name = text_at(pool, "metadata", "name")
        log.warning("GPUPool %s: unreadable %s annotation ignored", name, ROLLOUT_ANNOTATION)
        return RolloutRecord(revision)


def batch_size(percentage: int, nodes: int) -> int:
    """ceil(percentage% of `nodes`), at least one node."""
    return max(1, math.ceil(percentage * nodes / 100))


@dataclass(frozen=True)
class _Timing:
    window: CronWindow | None
    """None: no `includes`, always open."""
    interval: timedelta
    max_duration: timedelta

    def start_at(
        self, moment: datetime, window_start: datetime | None
    ) -> tuple[datetime, datetime] | None:
        """The first moment from `moment` on at which a batch may start, and the start of the
        window it would run in (`window_start`: the window of the update's current run); None
        when none ever may."""
        if window_start is not None and moment < window_start + self.max_duration:
            return moment, window_start  # the run goes on in its own window
        if self.window is None:
            return (moment, moment) if window_start is None else None
        ended = None if window_start is None else window_start + self.max_duration
        return self.window.open_from(moment, ended)

    def stopped(self, record: RolloutRecord, now: datetime) -> bool:
        """Whether the update's current run has ended and no next one may start now."""
        if record.window_start is None:
            return False
        found = self.start_at(now, record.window_start)
        return found is None or found[0] > now


def _timing(policy: NodeRollingUpdatePolicy, config: NodePoolConfig) -> _Timing:
    max_duration = parse_duration(policy.max_duration)
    includes = policy.maintenance_window.includes
    window = CronWindow(includes, max_duration, config.time_zone) if includes else None
    return _Timing(window, parse_duration(policy.batch_interval), max_duration)


@dataclass(frozen=True)
class _Step:
    at: datetime | None
    """None: never, without a person."""
    window_start: datetime | None
    nodes: tuple[str, ...]
    waits_for: str
    """What keeps it from starting earlier."""


def _schedule(
    queue: Sequence[str], size: int, earliest: datetime, record: RolloutRecord, timing: _Timing
) -> list[_Step]:
    """The remaining batches, each at the earliest time it may start (from `earliest` on) if
    every earlier one starts on time and its agents become Ready."""
    steps = []
    wanted: datetime | None = earliest
    window_start = record.window_start
    for offset in range(0, len(queue), size):
        nodes = tuple(queue[offset : offset + size])
        found = None if wanted is None else timing.start_at(wanted, window_start)
        if found is None:
            steps.append(_Step(None, None, nodes, "maxDuration ran out"))
            wanted = None
            continue
        at, window_start = found
        why = "the maintenance window" if at != wanted else "the batch interval"
        steps.append(_Step(at, window_start, nodes, why))
        wanted = at + timing.interval
    return steps


def _condition(
    status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> tuple[PoolCondition, ...]:
    return (PoolCondition(CONDITION, status, reason, message),)


@dataclass(frozen=True)
class _Agents:
    """The pool's nodes by the state of their agent."""

    nodes: list[str]
    """Every node of the pool, by name."""
    outdated: list[str]
    """Nodes whose agent pod was made from another template."""
    ready: set[str]
    """Nodes running a Ready agent of the current template."""

    @classmethod
    def of(cls, view: PoolView, current: str) -> _Agents:
        nodes = sorted(text_at(n, "metadata", "name") or "" for n in view.gpu_nodes)
        pods = view.agent.pods
        return cls(
            nodes,
            [n for n in nodes if n in pods and revision_of(pods[n]) != current],
            {
                n
                for n in nodes
                if n in pods and revision_of(pods[n]) == current and pod_ready(pods[n])
            },
        )

    def progress(self, current: str) -> str:
        return (
            f"{len(self.ready)} of {len(self.nodes)} nodes run a Ready agent of revision {current}"
        )


@dataclass(frozen=True)
class _Unready:
    """The nodes of the update's batches whose new agent is not Ready."""

    starting: tuple[str, ...]
    """Still within AGENT_READY_GRACE of their batch's start."""
    failed: tuple[str, ...]
    """Past it."""
    grace_ends: datetime | None
    """When the first of `starting` runs out of grace."""

    @classmethod
    def of(
        cls, record: RolloutRecord, agents: _Agents, now: datetime, skip: Sequence[str] = ()
    ) -> _Unready:
        """`skip`: nodes whose old agent is still there (their restart is still to come)."""
        members = set(agents.nodes) - agents.ready - set(skip)
        starting: list[str] = []
        failed: list[str] = []
        ends: list[datetime] = []
        for batch in record.batches:
            grace_end = batch.start + AGENT_READY_GRACE
            for node in (n for n in batch.nodes if n in members):
                if now < grace_end:
                    starting.append(node)
                    ends.append(grace_end)
                else:
                    failed.append(node)
        return cls(tuple(starting), tuple(failed), min(ends, default=None))

    def conditions(
        self, current: str, progress: str, *, more: bool
    ) -> tuple[PoolCondition, ...] | None:
        """AgentNotReady once an agent is past its grace, Updating while some only start;
        None when every agent of the update is Ready. `more`: batches remain."""
        if self.failed:
            tail = (
                "no further batch starts until it is"
                if more
                else "the update is not complete until it is"
            )
            return _condition(
                "False",
                AGENT_NOT_READY,
                f"the new agent (revision {current}) is not Ready on nodes "
                f"{', '.join(self.failed)}, {_GRACE_TEXT} after their batch started: {tail}",
            )
        if self.starting:
            count = len(self.starting)
            agents = "1 new agent" if count == 1 else f"{count} new agents"
            return _condition("True", UPDATING, f"{progress}; waits for {agents} to become Ready")
        return None


class _Part:
    name: str = "rollout"
    condition_types: tuple[str, ...] = (CONDITION,)

    def plan(self, view: PoolView, now: datetime, config: NodePoolConfig) -> PartPlan:
        current = view.agent.current
        if current is None:
            daemonset = f"{config.agent_namespace}/{config.agent_daemonset}"
            return PartPlan(
                self.name,
                conditions=_condition(
                    "Unknown", NO_REVISION, f"DaemonSet {daemonset} has no ControllerRevision"
                ),
            )
        manager = view.spec.node_manager_config if view.spec is not None else None
        policy = (manager and manager.node_pool_rolling_update_policy) or NodeRollingUpdatePolicy()
        agents = _Agents.of(view, current)
        if not agents.outdated:
            # The last batch's agents count too: the update is done only once they are Ready.
            unready = _Unready.of(rollout_record(view.pool, current), agents, now)
            progress = agents.progress(current)
            return PartPlan(
                self.name,
                conditions=unready.conditions(current, progress, more=False)
                or _condition("True", UP_TO_DATE, progress),
                wake_at=unready.grace_ends,
            )
        # batchPercentage 0 updates no node, as the model's advice on it says.
        off = "autoUpdate is false" if not policy.auto_update else "batchPercentage is 0"
        if not policy.auto_update or policy.batch_percentage == 0:
            pods = view.agent.pods
            return PartPlan(
                self.name,
                actions=tuple(
                    _action(n, pods[n], current, state="held", reason=off) for n in agents.outdated
                ),
                conditions=_condition(
                    "False",
                    AUTO_UPDATE_DISABLED,
                    f"{len(agents.outdated)} of {len(agents.nodes)} nodes run an outdated agent; "
                    f"{off}, so none is restarted",
                ),
            )
        record = rollout_record(view.pool, current)
        try:
            return self._rolling(
                view,
                now,
                timing=_timing(policy, config),
                policy=policy,
                record=record,
                agents=agents,
            )
        except ConfigError as exc:
            pods = view.agent.pods
            return PartPlan(
                self.name,
                actions=tuple(
                    _action(n, pods[n], current, state="held", reason=f"{exc.field} is invalid")
                    for n in agents.outdated
                ),
                conditions=_condition("False", INVALID_WINDOW, str(exc)),
            )

    def _rolling(
        self,
        view: PoolView,
        now: datetime,
        *,
        timing: _Timing,
        policy: NodeRollingUpdatePolicy,
        record: RolloutRecord,
        agents: _Agents,
    ) -> PartPlan:
        pods, current = view.agent.pods, record.revision
        rolled = record.rolled()
        # A node of a batch that began but whose old agent is still there (the pass stopped
        # between recording the batch and deleting its pods) is finished first.
        unfinished = [n for n in agents.outdated if n in rolled]
        queue = [n for n in agents.outdated if n not in rolled]
        unready = _Unready.of(record, agents, now, skip=unfinished)
        last = record.batches[-1].start if record.batches else None
        earliest = now if last is None else max(now, last + timing.interval)
        size = batch_size(policy.batch_percentage, len(agents.nodes))
        steps = _schedule(queue, size, earliest, record, timing)
        # The next batch is due by the clock but waits for the earlier batches' agents.
        blocked = (
            bool(unready.starting or unready.failed)
            and bool(steps)
            and steps[0].at is not None
            and steps[0].at <= now
        )
        actions = [
            _action(n, pods[n], current, state="due", reason="finishes the batch it was in")
            for n in unfinished
        ]
        for index, step in enumerate(steps):
            detail: dict[str, Any] = {"batch": len(record.batches) + 1 + index}
            if step.window_start is not None:
                detail["windowStart"] = rfc3339(step.window_start)
            for node in step.nodes:
                state: ActionState
                if step.at is None:
                    state, reason = "held", step.waits_for
                elif blocked and unready.failed:
                    state, reason = "held", "waits for the earlier batches' agents to be Ready"
                elif blocked:
                    state, reason = "waiting", "waits for the earlier batches' agents to start"
                elif step.at <= now:
                    state, reason = "due", "outdated agent"
                else:
                    state, reason = "waiting", f"waits for {step.waits_for}"
                at = step.at if state == "waiting" and not blocked else None
                actions.append(
                    _action(
                        node, pods[node], current, state=state, reason=reason, at=at, detail=detail
                    )
                )
        progress = agents.progress(current)
        # Agents past their grace are reported at once; starting ones only hold a due batch.
        reported = (
            unready.conditions(current, progress, more=bool(steps))
            if unready.failed or blocked
            else None
        )
        conditions = reported or _conditions(
            record, now, timing=timing, policy=policy, steps=steps, progress=progress
        )
        return PartPlan(
            self.name,
            actions=tuple(actions),
            conditions=conditions,
            wake_at=_wake_at(now, record, steps, timing, unready.grace_ends),
        )

    def apply(self, ctx: Context, view: PoolView, plan: PartPlan) -> None:
        due = plan.due()
        current = view.agent.current
        pool = ctx.cache.get("GPUPool", view.name) or view.pool
        if due and current is not None:
            record = rollout_record(pool, current)
            batch = tuple(a.target for a in due if a.target not in record.rolled())
            if batch:
                window = next(
                    (a.detail["windowStart"] for a in due if "windowStart" in a.detail), None
                )
                start = ctx.now()
                record = replace(
                    record,
                    window_start=parse_rfc3339(window) if window else start,
                    batches=(*record.batches, Batch(start, batch)),
                )
                # Recorded before any pod goes, so that a pass cut short is finished, not lost.
                pool = ctx.patch(
                    pool, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: record.to_json()}}}
                )
                ctx.event(
                    pool,
                    "Normal",
                    BATCH_EVENT,
                    f"batch {len(record.batches)} of the update to agent revision {current}: "
                    f"restarting the agents of nodes {', '.join(batch)}",
                )
            for action in due:
                ctx.delete(view.agent.pods[action.target])
        for condition in plan.conditions:
            if condition.reason in _WARNINGS:
                ctx.warn(pool, condition.reason, condition.message)


def _action(
    node: str,
    pod: JsonObject,
    current: str,
    *,
    state: ActionState,
    reason: str,
    at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Action:
    return Action(
        ACTION,
        node,
        f"{reason} (revision {revision_of(pod)}, current {current})",
        state=state,
        at=at,
        detail=detail or {},
    )


def _conditions(
    record: RolloutRecord,
    now: datetime,
    *,
    timing: _Timing,
    policy: NodeRollingUpdatePolicy,
    steps: Sequence[_Step],
    progress: str,
) -> tuple[PoolCondition, ...]:
    if record.window_start is None or not timing.stopped(record, now):
        following = next((s.at for s in steps if s.at is not None and s.at > now), None)
        upcoming = "" if following is None else f"; next batch at {rfc3339(following)}"
        return _condition("True", UPDATING, progress + upcoming)
    opened, limit = rfc3339(record.window_start), f"maxDuration {policy.max_duration}"
    ended = (
        f"{limit} from the update's first batch at {opened} ran out"
        if timing.window is None
        else f"the maintenance window that opened at {opened} closed after {limit}"
    )
    resume = steps[0].at if steps else None
    after = (
        f"it resumes in the window opening at {rfc3339(resume)}"
        if resume is not None
        else "no maintenance window follows: raise maxDuration or change the template "
        "again to continue"
    )
    return _condition(
        "False",
        MAX_DURATION_EXCEEDED,
        f"{ended}: the update to revision {record.revision} stopped with {progress}; {after}",
    )


def _wake_at(
    now: datetime,
    record: RolloutRecord,
    steps: Sequence[_Step],
    timing: _Timing,
    grace_ends: datetime | None,
) -> datetime | None:
    """The next batch's time, the end of maxDuration in a window batches run in, or when a
    starting agent runs out of grace."""
    starts = [record.window_start, *(s.window_start for s in steps)]
    moments = [s.at for s in steps if s.at is not None]
    moments += [] if grace_ends is None else [grace_ends]
    moments += [start + timing.max_duration for start in starts if start is not None]
    return min((m for m in moments if m > now), default=None)


ROLLOUT = _Part()
