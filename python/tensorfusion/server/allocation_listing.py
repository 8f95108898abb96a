"""`GET /api/allocation` narrowed to some GPUs and paged in the Kubernetes list style.

A filter selects GPUs (those matching every filter given). The answer holds those GPUs, the
allocations holding any of them, the per-node counts of their nodes and their `gpuWorkers`
entries. Pages cut the selected allocations in UID order; the first page carries the GPUs and
node counts, every page the gpuWorkers entries of its own allocations, so that the pages
together are the filtered snapshot with each part once.

The backend hands out the same snapshot object until the allocation state changes. What is
derived from it is kept beside it and built again only for a new one: the whole body's
encoded bytes and ETag (rendered once, whoever asks first), the GPUs by node, pool and name,
and per filter its UIDs in order and its first page's GPUs and node counts, rendered. The
whole snapshot is served from those bytes, and a filtered or paged request costs what it
returns, not the 10,000 allocations or 6,400 GPUs it leaves out or has already rendered.
Bodies are rendered by orjson, several times faster than the standard encoder. A continue
token names the snapshot it was cut from and is refused (410) once that snapshot is
replaced."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import orjson
from starlette.responses import Response

from tensorfusion.server.errors import ApiError

if TYPE_CHECKING:  # conditional renders with this module's `render`
    from tensorfusion.server.conditional import Rendered

CONTINUE_FIELD: Final = "query.continue"
"""How errors name the `continue` parameter (as request validation names the others)."""


class AllocationFilter(NamedTuple):
    """The GPUs wanted; None is no filter on that attribute."""

    node: str | None = None
    pool: str | None = None
    gpu: str | None = None

    @property
    def selects_all(self) -> bool:
        return self == AllocationFilter()

    def matches(self, gpu: Mapping[str, Any]) -> bool:
        return (
            (self.node is None or gpu["node"] == self.node)
            and (self.pool is None or gpu["pool"] == self.pool)
            and (self.gpu is None or gpu["name"] == self.gpu)
        )


@dataclass(frozen=True)
class AllocationQuery:
    filter: AllocationFilter = field(default_factory=AllocationFilter)
    limit: int | None = None
    """At most this many allocations (>= 1); None: all that remain."""
    continue_token: str | None = None

    @property
    def paged(self) -> bool:
        return self.limit is not None or self.continue_token is not None

    @property
    def whole(self) -> bool:
        """Whether the answer is the whole snapshot."""
        return not self.paged and self.filter.selects_all


@dataclass(frozen=True)
class ContinueToken:
    """Where a page ended: the snapshot it was cut from, its filter and its last UID."""

    snapshot: str
    filter: AllocationFilter
    after: str

    def encode(self) -> str:
        text = json.dumps([self.snapshot, list(self.filter), self.after], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> ContinueToken:
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
            snapshot, wanted, after = json.loads(raw)
            if (
                isinstance(snapshot, str)
                and isinstance(after, str)
                and isinstance(wanted, list)
                and len(wanted) == len(AllocationFilter._fields)
                and all(item is None or isinstance(item, str) for item in wanted)
            ):
                return cls(snapshot, AllocationFilter(*wanted), after)
        except (binascii.Error, ValueError, TypeError):
            pass
        raise ApiError(
            400,
            f"{CONTINUE_FIELD}: not a token this server issued; pass back metadata.continue of the "
            "previous page unchanged, or leave it out to start from the first page",
            field=CONTINUE_FIELD,
        )


class Selection(NamedTuple):
    """What a filter selects from one snapshot."""

    head: bytes
    """The first page's `gpus` and `workersPerNode` members, rendered."""
    uids: list[str]
    """The allocations holding any selected GPU, sorted."""
    gpus: frozenset[str] | None
    """The selected GPUs' names; None when every GPU is."""


class SnapshotView:
    """One snapshot with what requests derive from it."""

    MAX_SELECTIONS: Final = 64
    """Filters whose selection is kept (the oldest is dropped beyond it)."""

    def __init__(
        self, snapshot: Mapping[str, Any], render_whole: Callable[[Mapping[str, Any]], Rendered]
    ) -> None:
        self.snapshot = snapshot
        self.id = secrets.token_urlsafe(9)
        """Tells this snapshot from every other, also across restarts."""
        self._render_whole = render_whole
        self._whole: Rendered | None = None
        self._selections: dict[AllocationFilter, Selection] = {}
        # One render of the whole however many requests wait for it, as it takes tens of ms.
        self._render_lock = threading.Lock()
        self._selections_lock = threading.Lock()

    def whole(self) -> Rendered:
        """The whole snapshot as JSON with its ETag, rendered once."""
        with self._render_lock:
            if self._whole is None:
                self._whole = self._render_whole(self.snapshot)
            return self._whole

    def selection(self, wanted: AllocationFilter) -> Selection:
        """What `wanted` selects, derived once per filter (racing requests may derive it
        twice; both are equal)."""
        kept = self._selections.get(wanted)
        if kept is not None:
            return kept
        selection = self._select(wanted)
        with self._selections_lock:
            if len(self._selections) >= self.MAX_SELECTIONS:
                self._selections.pop(next(iter(self._selections)))
            self._selections[wanted] = selection
        return selection

    def gpu_worker(self, gpu: str, uid: str) -> Any:
        return next(e for e in self.snapshot["gpuWorkers"][gpu] if e["uid"] == uid)

    def _select(self, wanted: AllocationFilter) -> Selection:
        gpus = self._gpus(wanted)
        counts = self.snapshot["workersPerNode"]
        nodes = sorted({gpu["node"] for gpu in gpus})
        head = _members(
            render({"gpus": gpus, "workersPerNode": {n: counts[n] for n in nodes if n in counts}})
        )
        if wanted.selects_all:
            # None: no need to gather thousands of names to check.
            return Selection(head, sorted(self.snapshot["allocations"]), None)
        workers = self.snapshot["gpuWorkers"]
        uids = sorted({entry["uid"] for gpu in gpus for entry in workers.get(gpu["name"], ())})
        return Selection(head, uids, frozenset(gpu["name"] for gpu in gpus))

    def _gpus(self, wanted: AllocationFilter) -> list[Mapping[str, Any]]:
        """The GPUs the filter selects, in the snapshot's order."""
        gpus = self.snapshot["gpus"]
        # The narrowest index given yields the candidates; the others are checked on them.
        for key, value in (("name", wanted.gpu), ("node", wanted.node), ("pool", wanted.pool)):
            if value is not None:
                candidates = (gpus[p] for p in self._positions[key].get(value, ()))
                return [gpu for gpu in candidates if wanted.matches(gpu)]
        return list(gpus)

    @cached_property
    def _positions(self) -> dict[str, dict[Any, list[int]]]:
        """Where each node, pool and GPU name occurs in the GPU list (built for the first
        filter: the whole snapshot needs none)."""
        positions: dict[str, dict[Any, list[int]]] = {"node": {}, "pool": {}, "name": {}}
        for position, gpu in enumerate(self.snapshot["gpus"]):
            for key, table in positions.items():
                table.setdefault(gpu[key], []).append(position)
        return positions


class AllocationListing:
    """Answers `/api/allocation` requests from the backend's current snapshot; `render_whole`
    renders the whole snapshot with its ETag."""

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Any]],
        render_whole: Callable[[Mapping[str, Any]], Rendered],
    ) -> None:
        self._snapshot = snapshot
        self._render_whole = render_whole
        self._view: SnapshotView | None = None
        self._lock = threading.Lock()

    def whole(self) -> Rendered:
        """The whole snapshot (the answer to a query with no parameters), rendered once."""
        return self._current().whole()

    def answer(self, query: AllocationQuery) -> Response:
        # A bad token is refused before the snapshot is looked at.
        token = ContinueToken.decode(query.continue_token) if query.continue_token else None
        if token is not None and token.filter != query.filter:
            raise ApiError(
                400,
                f"{CONTINUE_FIELD}: the token is for the filter {_describe(token.filter)}, this "
                f"request asks for {_describe(query.filter)}; repeat the first page's filter",
                field=CONTINUE_FIELD,
            )
        view = self._current()
        if token is not None and token.snapshot != view.id:
            raise ApiError(
                410,
                f"{CONTINUE_FIELD}: the token is too old, the allocations changed since its page "
                "was cut; start a new list without continue",
                field=CONTINUE_FIELD,
            )
        body = _page(view, query, token.after if token else None)
        return Response(body, media_type="application/json")

    def _current(self) -> SnapshotView:
        snapshot = self._snapshot()
        with self._lock:
            if self._view is None or self._view.snapshot is not snapshot:
                self._view = SnapshotView(snapshot, self._render_whole)
            return self._view


EMPTY_HEAD: Final = b'"gpus":[],"workersPerNode":{}'
"""The `gpus` and `workersPerNode` members of every page after the first."""


def _page(view: SnapshotView, query: AllocationQuery, after: str | None) -> bytes:
    selected = view.selection(query.filter)
    uids = selected.uids
    start = 0 if after is None else bisect_right(uids, after)
    end = len(uids) if query.limit is None else min(start + query.limit, len(uids))
    allocations = view.snapshot["allocations"]
    workers: dict[str, list[Any]] = {}
    # UID order within each GPU, as in the snapshot: the pages' lists concatenate to its own.
    for uid in uids[start:end]:
        for gpu in allocations[uid]["gpus"]:
            if selected.gpus is None or gpu in selected.gpus:
                workers.setdefault(gpu, []).append(view.gpu_worker(gpu, uid))
    rest: dict[str, Any] = {
        "allocations": {uid: allocations[uid] for uid in uids[start:end]},
        "gpuWorkers": dict(sorted(workers.items())),
    }
    if query.paged:
        more = end < len(uids)
        rest["metadata"] = (
            {
                "continue": ContinueToken(view.id, query.filter, uids[end - 1]).encode(),
                "remainingItemCount": len(uids) - end,
            }
            if more
            else {}
        )
    head = selected.head if after is None else EMPTY_HEAD
    return b"{" + head + b"," + _members(render(rest)) + b"}"


def render(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, equivalent to what JSONResponse writes (the same values; spacing
    and escaping may differ). A non-finite number, which JSON cannot carry, is written as
    null rather than refused."""
    return orjson.dumps(body)


def _members(rendered_object: bytes) -> bytes:
    """A rendered JSON object's members, without its braces, to splice into another."""
    return rendered_object[1:-1]


def _describe(wanted: AllocationFilter) -> str:
    given = [f"{key}={value}" for key, value in wanted._asdict().items() if value is not None]
    return " ".join(given) or "(none)"
