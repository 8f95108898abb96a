"""Watch streams: replay from a resourceVersion, then follow the change log, with selectors,
bookmarks, `timeoutSeconds`, and 410 Gone for versions older than the log keeps."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web

from tests.kube.protocol import status_object
from tests.kube.resources import ApiResource
from tests.kube.store import Change, Expired, Obj, ObjectStore, meta

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchRequest:
    resource: ApiResource
    namespace: str | None
    selects: Callable[[Mapping[str, Any]], bool]
    since: int | None  # None: start with the current objects, as ADDED
    bookmarks: bool
    timeout_s: float | None
    # Streaming lists (client-go's WatchListClient): the initial ADDED events end with a
    # bookmark marked `k8s.io/initial-events-end`.
    initial_events_end: bool = False


def _line(event_type: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def _event(request: WatchRequest, change: Change) -> bytes | None:
    """The event `change` is for this watch, if any: an object that enters the selection
    is ADDED, one that leaves it is DELETED, in its state before the change at the change's
    resourceVersion (as kube-apiserver's watch cache sends it)."""
    if change.resource != request.resource.key:
        return None
    if request.namespace is not None and meta(change.obj).get("namespace") != request.namespace:
        return None
    now_selected = request.selects(change.obj)
    was_selected = change.old is not None and request.selects(change.old)
    if change.type == "MODIFIED":
        if now_selected and not was_selected:
            return _line("ADDED", change.obj)
        if was_selected and not now_selected and change.old is not None:
            version = meta(change.obj)["resourceVersion"]
            left = {**change.old, "metadata": {**meta(change.old), "resourceVersion": version}}
            return _line("DELETED", left)
    return _line(change.type, change.obj) if now_selected else None


def _bookmark(request: WatchRequest, version: int, *, initial_events_end: bool = False) -> bytes:
    metadata: dict[str, Any] = {"resourceVersion": str(version)}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {
        "kind": request.resource.kind,
        "apiVersion": request.resource.api_version,
        "metadata": metadata,
    }
    return _line("BOOKMARK", obj)


def _initial(request: WatchRequest, objects: Iterable[Obj]) -> list[bytes]:
    return [_line("ADDED", obj) for obj in objects if request.selects(obj)]


async def serve_watch(
    raw: aiohttp.web.BaseRequest,
    store: ObjectStore,
    request: WatchRequest,
    bookmark_interval_s: float,
) -> aiohttp.web.StreamResponse:
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(raw)
    queue = store.subscribe()  # before the replay, so that nothing falls between them
    try:
        if request.since is None:
            objects = sorted(store.objects(request.resource.key, request.namespace), key=_order)
            lines = _initial(request, objects)
        else:
            try:
                changes = store.changes_since(request.since)
            except Expired as error:
                gone = status_object(410, "Expired", str(error), failure=True)
                await response.write(_line("ERROR", gone))
                return response
            lines = [line for change in changes if (line := _event(request, change)) is not None]
        for line in lines:
            await response.write(line)
        if request.initial_events_end:
            await response.write(_bookmark(request, store.version, initial_events_end=True))
        await _follow(response, store, queue, request, bookmark_interval_s)
    finally:
        store.unsubscribe(queue)
    return response


def _order(obj: Obj) -> tuple[str, str]:
    return (str(meta(obj).get("namespace", "")), str(meta(obj).get("name", "")))


async def _follow(
    response: aiohttp.web.StreamResponse,
    store: ObjectStore,
    queue: asyncio.Queue[Change | None],
    request: WatchRequest,
    bookmark_interval_s: float,
) -> None:
    deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
    while True:
        wait = bookmark_interval_s if request.bookmarks else None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                # Only with nothing left queued has the watch sent every change up to the
                # current version: a client resuming from a later bookmark would skip some.
                if request.bookmarks and queue.empty():
                    await response.write(_bookmark(request, store.version))
                return
            wait = left if wait is None else min(wait, left)
        try:
            change = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            if request.bookmarks and queue.empty():
                await response.write(_bookmark(request, store.version))
            continue
        if change is None:  # the emulator is stopping
            return
        line = _event(request, change)
        if line is not None:
            await response.write(line)
