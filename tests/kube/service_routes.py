"""Where the emulator reaches a Service that a webhook's `clientConfig.service` names, as
kube-apiserver's service resolver reaches its endpoints: `<name>.<namespace>.svc` on the
Service's port, routed to a local address where the test runs the server behind it. The
host name stays the one in the URL, so TLS checks the certificate against the Service's DNS
name, as in a cluster."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Route = tuple[str, int]
"""(host, port) of a Service as webhook URLs name it, or of the local server behind it."""


def service_host(namespace: str, name: str) -> str:
    return f"{name}.{namespace}.svc"


class ServiceResolver(AbstractResolver):
    """Resolves routed Services to their local address; any other name as usual."""

    def __init__(self, routes: dict[Route, Route]) -> None:
        self._routes = routes  # read at each call: routes added later apply
        self._default = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self._routes.get((host, port))
        if target is None:
            return await self._default.resolve(host, port, family)
        address, local_port = target
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=local_port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._default.close()
