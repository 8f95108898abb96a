"""`--metrics-bind-address`: the Prometheus endpoint on a listener of its own (upstream's
controller flag, `:9000`), for scrapers that should not reach the management API."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tensorfusion.errors import ConfigError
from tensorfusion.server.routes_metrics import metrics_routes

FLAG = "--metrics-bind-address"


def parse_bind_address(text: str) -> tuple[str, int]:
    """`host:port`, `:port` (every interface, as upstream reads it) or `[v6]:port`."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        raise ConfigError(FLAG, f"{text!r} is not host:port or :port")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    return host, int(port)


def metrics_app(registry: CollectorRegistry) -> FastAPI:
    """Only `/metrics`, from the management app's registry (the same series)."""
    app = FastAPI(title="tensor-fusion metrics", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(metrics_routes(registry))
    return app
