"""Request counters and latency histograms, labelled by route template (not raw path, which
would let clients create unbounded series), method and status."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final, TypeGuard

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
UNMATCHED: Final = "unmatched"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Any other method is counted as "other": clients choose the method, not the series count."""


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tf_api_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "tf_api_request_duration_seconds",
            "Time from receiving a request to the end of its response.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template the router picked, or would have picked for a request refused before
    routing (401, 413)."""
    route = scope.get("route")
    if route is None:
        route = next(
            (r for r in routes if _named(r) and r.matches(scope)[0] is not Match.NONE), None
        )
    return route.path if _named(route) else UNMATCHED


def _named(route: object) -> TypeGuard[Route | Mount]:
    """A route with a path template (not a group of routes)."""
    return isinstance(route, Route | Mount)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(
                route_template(scope, self.routes),
                scope["method"] if scope["method"] in METHODS else "other",
                status,
                time.perf_counter() - started,
            )
