"""Rendered listing bodies kept per listing object: rendered and hashed once while the
backend hands out the same object, afresh when it hands out another."""

from __future__ import annotations

from typing import Any

from tensorfusion.server.conditional import Rendered, RenderedBodies


class Wraps:
    """Counts the listings wrapped for rendering."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        return {"rows": rows}


def test_a_listing_is_rendered_once_while_the_same_object_is_served() -> None:
    bodies, wrap = RenderedBodies(), Wraps()
    rows = [{"name": "a"}]
    first = bodies.of(("k",), rows, wrap)
    assert bodies.of(("k",), rows, wrap) is first
    assert wrap.calls == 1
    assert first == Rendered.of({"rows": rows}), "the body and ETag of the listing itself"


def test_another_object_is_rendered_afresh_even_when_equal() -> None:
    bodies, wrap = RenderedBodies(), Wraps()
    first = bodies.of(("k",), [{"name": "a"}], wrap)
    equal = bodies.of(("k",), [{"name": "a"}], wrap)
    changed = bodies.of(("k",), [{"name": "b"}], wrap)
    assert wrap.calls == 3
    assert equal.etag == first.etag, "the ETag is the body's digest"
    assert changed.etag != first.etag


def test_keys_are_kept_apart_and_the_oldest_dropped_beyond_the_bound() -> None:
    bodies, wrap = RenderedBodies(), Wraps()
    sources = [[{"n": n}] for n in range(RenderedBodies.MAX_LISTINGS + 1)]
    for n, rows in enumerate(sources):
        bodies.of(("k", n), rows, wrap)
    assert wrap.calls == len(sources)
    bodies.of(("k", len(sources) - 1), sources[-1], wrap)
    assert wrap.calls == len(sources), "the newest is kept"
    bodies.of(("k", 0), sources[0], wrap)
    assert wrap.calls == len(sources) + 1, "the oldest was dropped"
