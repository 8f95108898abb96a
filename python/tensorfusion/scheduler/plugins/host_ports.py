"""Host ports a pod binds on its node, and when two of them collide (kube's HostPortInfo)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tensorfusion.scheduler.plugins.spec_reader import SpecReader

BIND_ALL = "0.0.0.0"
"""An empty hostIP means every address, and collides with any address on the same port."""
PROTOCOLS = ("TCP", "UDP", "SCTP")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class HostPort:
    port: int
    protocol: str = "TCP"
    host_ip: str = BIND_ALL


def ip_conflicts(wanted: str, used: Collection[str]) -> bool:
    """Whether binding `wanted` collides with the addresses already bound on one (protocol,
    port) of a node: either side binding every address, or the same address."""
    if wanted == BIND_ALL:
        return bool(used)
    return BIND_ALL in used or wanted in used


def read_host_ports(reader: SpecReader, container: Mapping[str, Any], path: str) -> list[HostPort]:
    """The ports of one container that have a hostPort (> 0)."""
    ports = []
    for index, item in enumerate(reader.items(container.get("ports"), f"{path}.ports")):
        at = f"{path}.ports[{index}]"
        entry = reader.mapping(item, at)
        number = reader.integer(entry.get("hostPort"), f"{at}.hostPort", 0, _MAX_PORT)
        if not number:
            continue
        protocol = reader.text(entry.get("protocol"), f"{at}.protocol", "TCP") or "TCP"
        if protocol not in PROTOCOLS:
            reader.fail(
                f"{at}.protocol", f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
            )
            continue
        host_ip = reader.text(entry.get("hostIP"), f"{at}.hostIP") or BIND_ALL
        ports.append(HostPort(number, protocol, host_ip))
    return ports
