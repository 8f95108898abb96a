"""Pausing the cyclic garbage collector while building many objects at once."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """JSON-shaped trees (fleets, listed objects) hold no reference cycles, yet every few
    hundred new dicts would start a collection that walks all of them again: building
    100,000 objects is two to three times faster with the collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
