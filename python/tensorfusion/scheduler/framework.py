"""The scheduling framework's vocabulary, shaped like kube-scheduler's: extension points
(PreEnqueue, PreFilter, Filter, Score, Reserve, Permit, Bind), a CycleState per attempt, and
Status.

Unlike kube-scheduler, Filter and Score are vectorised: a plugin sees every node at once as
arrays (the node table and the GPU allocator) and answers with a mask or a score array. That
is what lets one pod be scheduled against thousands of nodes in well under a millisecond."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.pools import PoolDirectory

if TYPE_CHECKING:
    from tensorfusion.scheduler.allocator import GpuAllocator
    from tensorfusion.scheduler.node_table import NodeTable
    from tensorfusion.scheduler.pod_info import PodInfo

MAX_NODE_SCORE = 100
"""Every score plugin's normalised output lies in [0, MAX_NODE_SCORE], as in kube-scheduler."""

BIND_ANNOTATIONS = "bind/annotations"
"""CycleState key: annotations Reserve plugins want written on the pod when it is bound."""

BoolArray = NDArray[np.bool_]
ScoreArray = NDArray[np.int64]


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"
    """No change in the cluster can make the pod fit as it is (bad annotations, unknown pool)."""
    SKIP = "Skip"
    """PreFilter: the plugin has nothing to say about this pod; its Filter/Score are skipped."""
    WAIT = "Wait"
    """Permit: the pod keeps its reservation and waits until the plugin allows or rejects it."""
    ERROR = "Error"


_OK_CODES = (Code.SUCCESS, Code.SKIP)
"""Read on every stage of every attempt: a module constant spares the enum lookups."""


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code in _OK_CODES

    @classmethod
    def success(cls) -> Status:
        return _SUCCESS

    @classmethod
    def skip(cls) -> Status:
        return _SKIP

    @classmethod
    def unschedulable(cls, plugin: str, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons, plugin)

    @classmethod
    def unresolvable(cls, plugin: str, *reasons: str) -> Status:
        return cls(Code.UNRESOLVABLE, reasons, plugin)

    @classmethod
    def wait(cls, plugin: str, *reasons: str) -> Status:
        return cls(Code.WAIT, reasons, plugin)


_SUCCESS = Status()
_SKIP = Status(Code.SKIP)


@dataclass
class CycleState:
    """Scratch space of one scheduling attempt, shared by the plugins of that attempt (a
    PreFilter computes what its Filter and Score reuse). Keys are namespaced by plugin name."""

    data: dict[str, Any] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    """Plugins whose PreFilter returned Skip for this pod."""
    notes: list[str] = field(default_factory=list)
    """What a plugin could not do for this pod and why (shown by simulate)."""

    def read(self, key: str) -> Any:
        return self.data[key]

    def write(self, key: str, value: Any) -> None:
        self.data[key] = value


@dataclass(frozen=True)
class FilterResult:
    """A Filter plugin's verdict on every node.

    `passed[i]` says whether node i passes this plugin. A rejected node's reason is
    `reasons[codes[i]]`, or `reasons[0]` when `codes` is None (one reason for all). A plugin
    whose per-node reasons cost more than the verdict gives `detail` instead, which computes
    (reasons, codes) only when a diagnosis asks for them."""

    passed: BoolArray
    reasons: tuple[str, ...] = ()
    codes: NDArray[np.uint8] | None = None
    detail: Callable[[], tuple[tuple[str, ...], NDArray[np.uint8]]] | None = None

    def reason_table(self) -> tuple[tuple[str, ...], NDArray[np.uint8] | None]:
        if self.detail is not None:
            return self.detail()
        return self.reasons or ("rejected",), self.codes


@dataclass
class ClusterView:
    """What plugins read: nodes as a table of arrays and GPUs as struct-of-arrays. Plugins
    never mutate it outside Reserve/Unreserve."""

    nodes: NodeTable
    gpus: GpuAllocator
    pools: PoolDirectory = field(default_factory=lambda: PoolDirectory({}))
    network_gbps: NDArray[np.float64] | None = None
    """Measured intranet traffic (rx + tx, GB/s) per node index, when monitoring provides it."""


class Plugin(Protocol):
    name: ClassVar[str]


class PreEnqueuePlugin(Plugin, Protocol):
    def pre_enqueue(self, pod: PodInfo) -> Status:
        """Whether the pod may enter the scheduling queue at all. Anything but Success keeps
        it out, with the reasons reported, until the pod changes: it is not retried with
        backoff meanwhile. Called for every pod offered, so it must be cheap."""
        ...


class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status: ...


class FilterPlugin(Plugin, Protocol):
    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        """`candidates` marks the nodes still feasible; a plugin may skip work for the others
        (their entries in the result are ignored)."""
        ...


class ScorePlugin(Plugin, Protocol):
    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        """Raw scores for every node (only entries of feasible nodes are read), already in
        [0, MAX_NODE_SCORE] or brought there by `normalize`."""
        ...

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        """kube-scheduler's NormalizeScore; plugins whose raw scores are already in range
        return them unchanged."""
        ...


class ReservePlugin(Plugin, Protocol):
    def reserve(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int
    ) -> Status: ...

    def unreserve(self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int) -> None:
        """Undo reserve; must be safe to call after a failed or partial reserve."""
        ...


class PermitPlugin(Plugin, Protocol):
    def permit(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int
    ) -> tuple[Status, float]:
        """After Reserve, before Bind: Success lets the pod be bound; Wait (with a timeout in
        seconds) keeps its reservation until the plugin allows or rejects it through the
        profile's waiting pods, or the timeout rejects it; anything else denies it (its
        reservation is undone). Simulate runs it too, so it must change nothing but `state`."""
        ...


class BindPlugin(Plugin, Protocol):
    def bind(self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int) -> Status: ...


def normalize_reverse(scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
    """Map raw counts (higher is worse) to [0, 100] where the best feasible node gets 100,
    as kube-scheduler's DefaultNormalizeScore with reverse=true."""
    if not feasible.any():
        return scores
    highest = int(scores[feasible].max())
    if highest == 0:
        return np.full_like(scores, MAX_NODE_SCORE)
    return MAX_NODE_SCORE - scores * MAX_NODE_SCORE // highest


def normalize_max(scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
    """Scale so the best feasible node gets 100 (DefaultNormalizeScore, reverse=false)."""
    if not feasible.any():
        return scores
    highest = int(scores[feasible].max())
    if highest == 0:
        return scores
    return scores * MAX_NODE_SCORE // highest
