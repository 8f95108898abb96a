"""`GET /api/allocation` narrowed to some GPUs and paged in the Kubernetes list style.

A filter selects GPUs (those matching every filter given). The answer holds those GPUs, the
allocations holding any of them, the per-node counts of their nodes and their `gpuWorkers`
entries. Pages cut the selected allocations in UID order; the first page carries the GPUs and
node counts, every page the gpuWorkers entries of its own allocations, so that the pages
together are the filtered snapshot with each part once.

The backend hands out the same snapshot object until the allocation state changes. What is
derived from it (the GPUs by node, pool and name, the UIDs in order, the whole body's encoded
bytes) is kept beside it and built again only for a new one: the whole snapshot is served
from those bytes, and a filtered request costs what it returns, not the 10,000 allocations
it leaves out. Bodies are rendered by orjson, several times faster than the standard
encoder. A continue token names the snapshot it was cut from and is refused (410) once that
snapshot is replaced."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson
from starlette.responses import Response

from tensorfusion.server.errors import ApiError

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


class SnapshotView:
    """One snapshot with what requests derive from it."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot
        self.id = secrets.token_urlsafe(9)
        """Tells this snapshot from every other, also across restarts."""
        self._positions: dict[str, dict[Any, list[int]]] = {"node": {}, "pool": {}, "name": {}}
        for position, gpu in enumerate(snapshot["gpus"]):
            for key, table in self._positions.items():
                table.setdefault(gpu[key], []).append(position)
        self._uids = sorted(snapshot["allocations"])
        self._body: bytes | None = None
        self._render_lock = threading.Lock()

    def body(self) -> bytes:
        """The whole snapshot as JSON, rendered once."""
        with self._render_lock:
            if self._body is None:
                self._body = render(self.snapshot)
            return self._body

    def gpus(self, wanted: AllocationFilter) -> list[Mapping[str, Any]]:
        """The GPUs the filter selects, in the snapshot's order."""
        gpus = self.snapshot["gpus"]
        # The narrowest index given yields the candidates; the others are checked on them.
        for key, value in (("name", wanted.gpu), ("node", wanted.node), ("pool", wanted.pool)):
            if value is not None:
                candidates = (gpus[p] for p in self._positions[key].get(value, ()))
                return [gpu for gpu in candidates if wanted.matches(gpu)]
        return list(gpus)

    def uids(self, wanted: AllocationFilter, gpus: list[Mapping[str, Any]]) -> list[str]:
        """The UIDs of the allocations holding any of `gpus`, sorted."""
        if wanted.selects_all:
            return self._uids
        workers = self.snapshot["gpuWorkers"]
        return sorted({entry["uid"] for gpu in gpus for entry in workers.get(gpu["name"], ())})

    def node_counts(self, gpus: list[Mapping[str, Any]]) -> dict[str, int]:
        counts = self.snapshot["workersPerNode"]
        nodes = sorted({gpu["node"] for gpu in gpus})
        return {node: counts[node] for node in nodes if node in counts}

    def gpu_worker(self, gpu: str, uid: str) -> Any:
        return next(e for e in self.snapshot["gpuWorkers"][gpu] if e["uid"] == uid)


class AllocationListing:
    """Answers `/api/allocation` requests from the backend's current snapshot."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot
        self._view: SnapshotView | None = None
        self._lock = threading.Lock()

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
        if not query.paged and query.filter.selects_all:
            return _json(view.body())
        return _json(render(_page(view, query, token.after if token else None)))

    def _current(self) -> SnapshotView:
        snapshot = self._snapshot()
        with self._lock:
            if self._view is None or self._view.snapshot is not snapshot:
                self._view = SnapshotView(snapshot)
            return self._view


def _page(view: SnapshotView, query: AllocationQuery, after: str | None) -> dict[str, Any]:
    gpus = view.gpus(query.filter)
    uids = view.uids(query.filter, gpus)
    start = 0 if after is None else bisect_right(uids, after)
    end = len(uids) if query.limit is None else min(start + query.limit, len(uids))
    allocations = view.snapshot["allocations"]
    # None: every GPU is selected (no need to gather thousands of names to check).
    selected = None if query.filter.selects_all else {gpu["name"] for gpu in gpus}
    workers: dict[str, list[Any]] = {}
    # UID order within each GPU, as in the snapshot: the pages' lists concatenate to its own.
    for uid in uids[start:end]:
        for gpu in allocations[uid]["gpus"]:
            if selected is None or gpu in selected:
                workers.setdefault(gpu, []).append(view.gpu_worker(gpu, uid))
    first = after is None
    body: dict[str, Any] = {
        "gpus": gpus if first else [],
        "workersPerNode": view.node_counts(gpus) if first else {},
        "allocations": {uid: allocations[uid] for uid in uids[start:end]},
        "gpuWorkers": dict(sorted(workers.items())),
    }
    if query.paged:
        more = end < len(uids)
        body["metadata"] = (
            {
                "continue": ContinueToken(view.id, query.filter, uids[end - 1]).encode(),
                "remainingItemCount": len(uids) - end,
            }
            if more
            else {}
        )
    return body


def render(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, equivalent to what JSONResponse writes (the same values; spacing
    and escaping may differ). A non-finite number, which JSON cannot carry, is written as
    null rather than refused."""
    return orjson.dumps(body)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _describe(wanted: AllocationFilter) -> str:
    given = [f"{key}={value}" for key, value in wanted._asdict().items() if value is not None]
    return " ".join(given) or "(none)"
