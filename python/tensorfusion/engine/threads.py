"""The daemon threads a home starts its loops in."""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_daemon(name: str, target: Callable[..., None], *args: object) -> threading.Thread:
    """Start `target(*args)` in a daemon thread named `tf-<name>`."""
    thread = threading.Thread(target=target, args=args, name=f"tf-{name}", daemon=True)
    thread.start()
    return thread
