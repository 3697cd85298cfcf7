"""The API's own Prometheus metrics (job `kpsandbox-api`): `GET /metrics` on the API's port.

A pure-ASGI middleware (`RequestMetrics`) counts every HTTP request by method, route template and
status, times it from its first byte to its last response byte, and counts those in flight. It
writes plain integers into one `ApiMetrics` (no locks, no prometheus-client objects on the request
path: a request costs two clock reads and a few dict updates, bench/api.py part (c)); the
exposition text is built from them only when Prometheus scrapes, by a collector over a private
CollectorRegistry (one per app, never the global one). Names, labels and help texts come from the
catalogue (schemas/metrics.py).

Labels stay bounded: `route` is the matched route's template (`/v1/payments/{payment_id}`), never
the raw path, and OTHER for a path no route matches; a method outside METHODS is OTHER too.
`/metrics` has no authentication, like the other exporters: it shows counts, never ids.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.metric_families import counter, cumulative_buckets, gauge, histogram
from infra.metrics_http import CONTENT_TYPE
from schemas.metrics import API_REQUEST_BUCKETS_S

OTHER: Final = "other"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
METRICS_PATH: Final = "/metrics"
SERVER_ERROR: Final = 500  # what the client gets when the app raises before answering


@dataclass(slots=True)
class Timing:
    """One (method, route)'s histogram: a count per bucket of API_REQUEST_BUCKETS_S (the last is +Inf)
    and the sum of the durations."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(API_REQUEST_BUCKETS_S) + 1))
    seconds: float = 0.0


class ApiMetrics:
    """Request counts, durations and the in-flight count of one app; written only by RequestMetrics."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}  # (method, route, status) -> requests
        self.durations: dict[tuple[str, str], Timing] = {}  # (method, route) -> its histogram
        self.in_flight = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ApiCollector(self))

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request finished: its method, route template, status and duration."""
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        timing = self.durations.get((method, route))
        if timing is None:
            timing = self.durations[(method, route)] = Timing()
        timing.buckets[bisect_left(API_REQUEST_BUCKETS_S, seconds)] += 1
        timing.seconds += seconds


class _ApiCollector(Collector):
    """Builds the kpsandbox_api_* families from an ApiMetrics at scrape time."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue entry of job `kpsandbox-api`."""
        requests = counter("api_requests")
        for key, count in sorted(self._m.requests.items()):
            requests.add_metric(list(key), count)
        yield requests
        durations = histogram("api_request_duration_seconds")
        for (method, route), timing in sorted(self._m.durations.items()):
            buckets = cumulative_buckets(API_REQUEST_BUCKETS_S, timing.buckets)
            durations.add_metric([method, route], buckets, timing.seconds)
        yield durations
        in_flight = gauge("api_requests_in_flight")
        in_flight.add_metric([], self._m.in_flight)
        yield in_flight


class RouteTemplates:
    """The matched route's template for a finished request's scope, else OTHER.

    FastAPI puts its own routes in the scope (`route`); for plain Starlette routes (/openapi.json,
    the docs assets mount) only the `endpoint` is there, so the endpoint → template map of the app's
    routes is built at the first request that needs it (every route is added by then).
    """

    def __init__(self, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self._routes = routes
        self._by_endpoint: dict[object, str] | None = None

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if isinstance(route, BaseRoute):
            return str(getattr(route, "path_format", OTHER))
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return OTHER
        if self._by_endpoint is None:
            self._by_endpoint = {
                getattr(r, "endpoint", None) or getattr(r, "app", None): str(getattr(r, "path_format", OTHER))
                for r in self._routes()
            }
        return self._by_endpoint.get(endpoint, OTHER)


class RequestMetrics:
    """ASGI middleware feeding an ApiMetrics; install it outermost so it times everything inside."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, templates: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = SERVER_ERROR

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, watched)
        finally:
            self.metrics.in_flight -= 1
            method = scope["method"] if scope["method"] in METHODS else OTHER
            self.metrics.answered(method, self.templates(scope), status, time.perf_counter() - started)


def install_metrics(app: FastAPI) -> ApiMetrics:
    """Adds the middleware and `GET /metrics` (not in the OpenAPI document) to `app`; its ApiMetrics."""
    metrics = ApiMetrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics, templates=RouteTemplates(lambda: app.routes))

    async def scrape() -> Response:  # on the event loop, never beside a request's update in a thread
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE)

    app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    return metrics
