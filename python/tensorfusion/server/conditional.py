"""Conditional reads: a listing carries an ETag, a digest of its body, and a client that
sends it back in If-None-Match gets 304 Not Modified and no body. A page polling listings
that did not change then moves no data (RFC 9110, section 13.1.2).

A listing the backend keeps per version of its state (the same object until the state
changes, see `InventoryCache`) is rendered and hashed once per version: `RenderedBodies`
keeps its body and ETag while the backend hands out that same object."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from tensorfusion.server.allocation_listing import render

NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not Modified: the body equals the one whose ETag was sent back"}
}
"""Documents the 304 of a route answered by `conditional_json`."""

S = TypeVar("S")


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str

    @classmethod
    def of(cls, content: Any) -> Rendered:
        body = render(content)
        return cls(body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"')


class RenderedBodies:
    """The rendered body of each listing (by a key naming the route and its query), kept
    while the backend returns the very object it was rendered from. Holding that object
    keeps its identity from being reused by another. Thread-safe (racing readers of a new
    version may render it twice)."""

    MAX_LISTINGS = 256
    """Listings kept (each distinct query is one): the oldest is dropped beyond it."""

    def __init__(self) -> None:
        self._kept: dict[Hashable, tuple[object, Rendered]] = {}
        self._lock = threading.Lock()

    def of(self, key: Hashable, source: S, wrap: Callable[[S], Any]) -> Rendered:
        """The body of `wrap(source)`, rendered only when `source` is not the object the
        body under `key` was last rendered from. `source` must not change once returned
        (a kept listing is shared and never modified)."""
        kept = self._kept.get(key)
        if kept is not None and kept[0] is source:
            return kept[1]
        rendered = Rendered.of(wrap(source))
        with self._lock:
            self._kept.pop(key, None)
            if len(self._kept) >= self.MAX_LISTINGS:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = (source, rendered)
        return rendered


def conditional_json(request: Request, content: Any) -> Response:
    """`content` as JSON with its ETag, or 304 when the request's If-None-Match names it.
    The body is built either way: its digest is the version (no listing keeps one)."""
    return conditional_response(request, Rendered.of(content))


def conditional_response(request: Request, rendered: Rendered) -> Response:
    """The rendered body with its ETag, or 304 when the request's If-None-Match names it."""
    # no-cache: a cache may keep the body, but must ask again (with the ETag) before reuse.
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if _names(request.headers.get("if-none-match", ""), rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type="application/json", headers=headers)


def _names(if_none_match: str, etag: str) -> bool:
    """Whether the header's list names `etag`; weak tags compare alike (weak comparison)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
