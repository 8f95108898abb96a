"""The kubelet's device-plugin checkpoint: which devices the kubelet handed to which
containers. The agent reads it to learn which GPUs the NVIDIA device plugin gave to pods
(`nvidia.com/gpu`): those GPUs are the pods', not TensorFusion's to share.

The file is the kubelet's JSON:
`{"Data": {"PodDeviceEntries": [{"PodUID", "ContainerName", "ResourceName", "DeviceIDs",
"AllocResp"}], "RegisteredDevices": {resource: [id, ...]}}, "Checksum": n}`. `DeviceIDs` maps
NUMA node to IDs since kubelet 1.21 and is a plain list before; both are read. The checksum
is not checked: it hashes Go's in-memory layout, and a torn file fails to parse anyway.

The NVIDIA plugin names a device by its UUID (`GPU-...`, the default), by its index
(`deviceIDStrategy=index`), and a shared (time-sliced) replica as `<id>::<n>`; the replica
suffix is dropped here, so an ID names a whole GPU.

A malformed file never changes what is held: the last good reading stays, and `problem` says
what is wrong with the file (a GPU flipped on a torn write would let two owners share it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tensorfusion.api.field_errors import type_name
from tensorfusion.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PATH: Final = Path("/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint")
NVIDIA_GPU: Final = "nvidia.com/gpu"
READ_EVERY_S: Final = 30.0
"""The file is read again at least this often, even when its mtime says nothing changed (a
write within the clock's resolution)."""
REPLICA_SEPARATOR: Final = "::"


def held_devices(text: str, source: str, resource: str = NVIDIA_GPU) -> frozenset[str]:
    """The IDs of the devices that entries of `resource` hold, without replica suffixes.
    ConfigError naming `source` and the field when the text is not a checkpoint."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"not JSON: {exc}") from None
    document = _mapping(document, source, "the document")
    data = _mapping(_get(document, source, "Data"), source, "Data")
    entries = data.get("PodDeviceEntries")
    if entries is None:
        entries = []  # Go writes an empty slice as null
    if not isinstance(entries, list):
        raise _wrong(source, "Data.PodDeviceEntries", "a list", entries)
    held: set[str] = set()
    for index, item in enumerate(entries):
        where = f"Data.PodDeviceEntries[{index}]"
        entry = _mapping(item, source, where)
        name = _get(entry, source, f"{where}.ResourceName")
        if not isinstance(name, str):
            raise _wrong(source, f"{where}.ResourceName", "a string", name)
        if name == resource:
            held.update(_device_ids(entry.get("DeviceIDs"), source, f"{where}.DeviceIDs"))
    return frozenset(device.split(REPLICA_SEPARATOR, 1)[0] for device in held)


def _device_ids(value: object, source: str, where: str) -> list[str]:
    """A plain list (kubelet < 1.21) or NUMA node -> list (kubelet >= 1.21)."""
    if value is None:
        return []
    if isinstance(value, list):
        return _strings(value, source, where)
    if isinstance(value, dict):
        return [
            device
            for numa, ids in value.items()
            for device in _strings([] if ids is None else ids, source, f"{where}[{numa!r}]")
        ]
    raise _wrong(source, where, "a list of IDs or a map of NUMA node to IDs", value)


def _strings(value: object, source: str, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _wrong(source, where, "a list of IDs", value)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _wrong(source, f"{where}[{index}]", "a string", item)
    return value


def _get(mapping: dict[str, Any], source: str, where: str) -> Any:
    key = where.rsplit(".", 1)[-1]
    if key not in mapping:
        raise ConfigError(f"{source}: {where}", "required")
    return mapping[key]


def _mapping(value: object, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(source, where, "an object", value)
    return value


def _wrong(source: str, where: str, wanted: str, value: object) -> ConfigError:
    return ConfigError(f"{source}: {where}", f"must be {wanted}, got {type_name(value)}")


class DevicePluginCheckpoint:
    """Follows the checkpoint at `path`: `poll` reads it when it changed (mtime, size or
    inode: the kubelet replaces the file) or READ_EVERY_S passed. A missing file holds
    nothing. Not thread-safe: one thread polls."""

    def __init__(
        self,
        path: Path = DEFAULT_PATH,
        *,
        resource: str = NVIDIA_GPU,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.resource = resource
        self.clock = clock
        self.held: frozenset[str] = frozenset()
        """Device IDs the plugin's entries hold, as of the last good reading."""
        self.problem: str | None = None
        """Why the file as last read cannot be used (None when it could, or is missing)."""
        self.errors = 0
        """Readings that failed, since the start."""
        self._seen: tuple[int, int, int] | None = None
        self._read_at: float | None = None

    def poll(self) -> bool:
        """Read the file if it is due; True when what is held changed."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            return self._failed(f"{self.path}: cannot read: {exc.strerror or exc}")
        else:
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        now = self.clock()
        if stamp == self._seen and self._read_at is not None and now - self._read_at < READ_EVERY_S:
            return False
        self._seen, self._read_at = stamp, now
        if stamp is None:
            return self._read(frozenset())
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._read(frozenset())
        except (OSError, UnicodeDecodeError) as exc:
            return self._failed(f"{self.path}: cannot read: {exc}")
        try:
            return self._read(held_devices(text, str(self.path), self.resource))
        except ConfigError as exc:
            return self._failed(str(exc))

    def _read(self, held: frozenset[str]) -> bool:
        self.problem = None
        changed, self.held = held != self.held, held
        return changed

    def _failed(self, problem: str) -> bool:
        if problem != self.problem:
            log.error("device-plugin checkpoint ignored, the last good reading stays: %s", problem)
        self.problem = problem
        self.errors += 1
        return False
