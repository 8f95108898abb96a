"""`create_app`: the management API over a backend, with its dashboard, metrics and health."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tensorfusion import __version__
from tensorfusion.server.auth import Authenticator, AuthMiddleware
from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.body_limit import BodyLimitMiddleware
from tensorfusion.server.dashboard import mount_dashboard
from tensorfusion.server.errors import install_error_handlers
from tensorfusion.server.inventory_metrics import InventoryCollector
from tensorfusion.server.openapi import install_openapi
from tensorfusion.server.request_metrics import MetricsMiddleware, RequestMetrics
from tensorfusion.server.routes_health import health_routes
from tensorfusion.server.routes_inventory import inventory_routes
from tensorfusion.server.routes_metrics import metrics_routes
from tensorfusion.server.routes_scheduling import scheduling_routes
from tensorfusion.server.routes_workers import worker_routes
from tensorfusion.server.settings import ServerSettings

DESCRIPTION = (
    "GPU pooling: simulate scheduling, see pools, nodes, GPUs and workers, and hand out GPU "
    "slices to local processes. State-changing requests need `Authorization: Bearer <token>`; "
    "reads are open on loopback. Every error is `{error, message, field?}`."
)


def create_app(
    backend: ManagementBackend,
    settings: ServerSettings,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """`authenticator` checks bearer tokens; default: the settings' token."""
    app = FastAPI(title="tensor-fusion", version=__version__, description=DESCRIPTION)
    registry = CollectorRegistry()
    registry.register(InventoryCollector(backend))
    app.state.metrics_registry = registry  # what `--metrics-bind-address` serves too
    install_error_handlers(app)
    routers = (
        scheduling_routes(backend),
        inventory_routes(backend),
        worker_routes(backend),
        health_routes(backend),
        metrics_routes(registry),
    )
    for router in routers:
        app.include_router(router)
    mount_dashboard(app)
    install_openapi(app)
    # The routes themselves (the app lists included routers as one entry each), for naming
    # the route of a request the guards refuse before routing.
    routes = [*app.routes, *(route for router in routers for route in router.routes)]
    # Added innermost first: metrics see every answer, including the 401s and 413s that
    # the two guards give before the app is reached.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, settings=settings, authenticator=authenticator)
    app.add_middleware(MetricsMiddleware, metrics=RequestMetrics(registry), routes=routes)
    return app
