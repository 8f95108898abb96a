"""A declared fleet, parsed and checked once per content. Reading a large fleet file is most of
what `up --fleet` waits for (parsing and checking 15 MB of YAML at 1,000 nodes takes seconds,
registering it a fraction of that), and a restart nearly always names the same file: the
checked objects of the file last read are kept in the state dir as JSON, under the file's
digest and the package version, and read back when both match. The objects are registered
every time all the same, so the store ends exactly as after a full read."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from tensorfusion import __version__
from tensorfusion.agent.discovery import Object, fleet_objects

log = logging.getLogger(__name__)

CACHE_FILE = "fleet-cache.json"


def read_fleet(path: Path, state_root: Path) -> list[Object]:
    """The objects of the fleet file at `path`, from the cache in `state_root` when it holds
    this very content; FleetError as `fleet_objects` raises it otherwise."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return fleet_objects(path)  # reports the file it cannot read, naming it
    key = f"{__version__}:{hashlib.sha256(raw).hexdigest()}"
    cache = state_root / CACHE_FILE
    cached = _cached(cache, key)
    if cached is not None:
        return cached
    objects = fleet_objects(path, text)
    _keep(cache, key, objects)
    return objects


def _cached(cache: Path, key: str) -> list[Object] | None:
    try:
        entry: Any = json.loads(cache.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.info("the fleet cache %s is unreadable (%s): reading the fleet file", cache, exc)
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    objects = entry.get("objects")
    if not isinstance(objects, list) or not all(isinstance(obj, dict) for obj in objects):
        return None
    return objects


def _keep(cache: Path, key: str, objects: list[Object]) -> None:
    """Writes the cache whole or not at all (a crash leaves the previous one or none), and
    only for objects JSON gives back unchanged: YAML also has non-string keys and binary."""
    try:
        text = json.dumps({"key": key, "objects": objects})
    except (TypeError, ValueError):
        return
    if json.loads(text)["objects"] != objects:
        return
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cache)
    except OSError as exc:  # a full disk costs the next start its shortcut, nothing more
        log.info("could not keep the fleet cache %s: %s", cache, exc)
        partial.unlink(missing_ok=True)
