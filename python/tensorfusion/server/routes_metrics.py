"""`/metrics`: Prometheus text from the app's own registry (never the process-global one, so
that two servers in one process, as in tests, do not share series)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import Response

from tensorfusion.server.responses import READ


def metrics_routes(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics",
        responses=READ | {200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        response_class=Response,
        summary="Prometheus text: pool, GPU and worker gauges, request counters",
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
