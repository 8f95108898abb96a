"""Watching several kinds on the Kubernetes API: one watch stream per kind, each read by its
own thread into one queue, merged in arrival order (each kind's changes stay in order).

A stream is resumed from the last version it saw (events and bookmarks) when the server ends
it. For a bounded watch, a kind has "caught up" once its stream reaches the version that was
current when the watch began, or the server ends the first stream (it has then replayed
everything it had). `StreamFeed` follows kinds without end, each from its own version, as an
informer does.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import urllib3

from tensorfusion.errors import StoreError
from tensorfusion.store.interface import WatchEvent
from tensorfusion.store.kube_http import Interruption, KubeApi, api_error
from tensorfusion.store.kube_kinds import KubeKind

_CHANGES = frozenset({"ADDED", "MODIFIED", "DELETED"})
# A server never ends a watch sooner than a whole second after it starts.
_SHORTEST_STREAM_S = 1
# How long past its own timeout a stream may stay silent before the read gives up.
_READ_MARGIN_S = 10.0
# A stream that follows without end is ended and resumed this often (bookmarks keep its
# version current meanwhile), as client-go's reflector asks for 5 to 10 minutes.
_LONGEST_STREAM_S = 300


@dataclass(frozen=True, slots=True)
class _CaughtUp:
    kind: str


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_Item = WatchEvent | _CaughtUp | _Failed


class _KindStream(threading.Thread):
    """Reads one kind's changes after `since` into `out` until `stop` is set or the deadline
    passes (and the kind has caught up with `target`); `field_selector` (the query
    parameter's text) narrows them on the server."""

    def __init__(
        self,
        api: KubeApi,
        kind: KubeKind,
        *,
        since: int,
        target: int,
        deadline: float,
        out: queue.Queue[_Item],
        field_selector: str = "",
    ) -> None:
        super().__init__(name=f"watch-{kind.plural}", daemon=True)
        self.api, self.kind, self.version = api, kind, since
        self.target, self.deadline, self.out = target, deadline, out
        self.field_selector = field_selector
        self.stop = threading.Event()
        # Ends the stream's request wherever it is, even one sent after the halt.
        self._interruption = Interruption()
        self._caught_up = since >= target

    def halt(self) -> None:
        self.stop.set()
        self._interruption.interrupt()

    def run(self) -> None:
        try:
            if self._caught_up:
                self.out.put(_CaughtUp(self.kind.kind))
            while not self.stop.is_set():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0 and self._caught_up:
                    return
                self._follow(max(_SHORTEST_STREAM_S, math.ceil(min(remaining, _LONGEST_STREAM_S))))
                self._catch_up()  # the server ended the stream: it replayed all it had
        except BaseException as error:  # handed to the consumer, which raises it
            if not self.stop.is_set():
                self.out.put(_Failed(error))

    def _catch_up(self) -> None:
        if not self._caught_up:
            self._caught_up = True
            self.out.put(_CaughtUp(self.kind.kind))

    def _follow(self, timeout_s: int) -> None:
        what = f"watch of {self.kind.kind}"
        query = [
            ("watch", "true"),
            ("resourceVersion", str(self.version)),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_s)),
        ]
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        response = self.api.stream(
            self.kind.collection(), what, query, timeout_s + _READ_MARGIN_S, self._interruption
        )
        ended = False
        try:
            if self.stop.is_set():
                return
            for line in _lines(response):
                self._handle(json.loads(line), what)
                if self.stop.is_set():
                    return
            ended = True
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if not self.stop.is_set():
                raise StoreError(
                    f"{what}: the stream from {self.api.host} broke: {error}"
                ) from None
        finally:
            self._interruption.release()
            if not ended:
                # Left in the middle of the stream: its connection must not serve another
                # request, which would read the rest of this stream as its answer.
                response.close()
            response.release_conn()

    def _handle(self, event: dict[str, object], what: str) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            raise StoreError(f"{what}: the API server sent an event without an object")
        if kind == "ERROR":
            raise api_error(int(obj.get("code") or 500), obj, what)
        version = int(obj.get("metadata", {}).get("resourceVersion") or self.version)
        self.version = max(self.version, version)
        if kind in _CHANGES:
            obj.setdefault("apiVersion", self.kind.api_version)
            obj.setdefault("kind", self.kind.kind)
            self.out.put(WatchEvent(kind, obj, version))  # type: ignore[arg-type]
        if self.version >= self.target:
            self._catch_up()


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The non-empty lines of a streamed body (one JSON watch event each)."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())
    if buffer.strip():
        yield buffer


def merged_watch(
    api: KubeApi, kinds: Sequence[KubeKind], since: int, target: int, deadline: float
) -> Iterator[WatchEvent]:
    """Every change to `kinds` after `since`, as it arrives, until the deadline has passed and
    every kind has caught up with `target` (the version current when the watch began)."""
    out: queue.Queue[_Item] = queue.Queue()
    streams = [
        _KindStream(api, kind, since=since, target=target, deadline=deadline, out=out)
        for kind in kinds
    ]
    behind = {kind.kind for kind in kinds}
    for stream in streams:
        stream.start()
    try:
        while behind or time.monotonic() < deadline:
            wait = None if behind else max(0.0, deadline - time.monotonic())
            try:
                item = out.get(timeout=wait)
            except queue.Empty:
                return
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _CaughtUp):
                behind.discard(item.kind)
            else:
                yield item
    finally:
        for stream in streams:
            stream.halt()


class StreamFeed:
    """`ChangeFeed` over one endless watch stream per kind, each from its own version and
    narrowed to its field selector's text, if `field_selectors` has one."""

    def __init__(
        self,
        api: KubeApi,
        kinds: Mapping[KubeKind, int],
        field_selectors: Mapping[KubeKind, str],
    ) -> None:
        self._out: queue.Queue[_Item] = queue.Queue()
        self._ready: list[WatchEvent] = []
        self._failure: BaseException | None = None
        self._streams = [
            _KindStream(
                api,
                kind,
                since=since,
                target=since,
                deadline=math.inf,
                out=self._out,
                field_selector=field_selectors.get(kind, ""),
            )
            for kind, since in kinds.items()
        ]
        for stream in self._streams:
            stream.start()

    def take(self) -> list[WatchEvent]:
        while True:
            try:
                self._keep(self._out.get_nowait())
            except queue.Empty:
                break
        if self._failure is not None:
            raise self._failure
        taken, self._ready = self._ready, []
        return taken

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._ready and self._failure is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._keep(self._out.get(timeout=left))
            except queue.Empty:
                return False
        return True

    def close(self) -> None:
        for stream in self._streams:
            stream.halt()

    def _keep(self, item: _Item) -> None:
        if isinstance(item, _Failed):
            self._failure = self._failure or item.error
        elif isinstance(item, WatchEvent):
            self._ready.append(item)


def replay(api: KubeApi, kinds: Sequence[KubeKind], since: int, target: int) -> list[WatchEvent]:
    """The changes to `kinds` after `since` up to `target`, oldest first."""
    events = [
        event
        for event in merged_watch(api, kinds, since, target, time.monotonic())
        if event.resource_version <= target
    ]
    return sorted(events, key=lambda event: event.resource_version)
