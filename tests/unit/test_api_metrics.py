"""The API's request metrics middleware: counts by template and status, in-flight, and failures as 500."""

from __future__ import annotations

import pytest
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

from producers.api.metrics import ApiMetrics, RequestMetrics, RouteTemplates


class _Route(BaseRoute):
    path_format = "/v1/things/{thing_id}"


def _scope(method: str = "GET") -> Scope:
    return {"type": "http", "method": method, "path": "/v1/things/t_1"}


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _drop(message: Message) -> None:
    pass


def _value(m: ApiMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


async def test_a_request_is_counted_under_its_template_and_status() -> None:
    """A routed 201 is counted once under the template; in flight is 1 while it runs, 0 after."""
    metrics = ApiMetrics()
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"], scope["route"] = object(), None
        seen.append(metrics.in_flight)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    # No route of the app has that endpoint: `other`.
    middleware = RequestMetrics(app, metrics=metrics, templates=RouteTemplates(lambda: []))
    await middleware(_scope(), _receive, _drop)
    await middleware(_scope("BREW"), _receive, _drop)
    assert seen == [1, 1] and metrics.in_flight == 0
    assert _value(metrics, "kpsandbox_api_requests_total", method="GET", route="other", status="201") == 1
    assert _value(metrics, "kpsandbox_api_requests_total", method="other", route="other", status="201") == 1
    assert _value(metrics, "kpsandbox_api_request_duration_seconds_count", method="GET", route="other") == 1


async def test_an_exception_before_an_answer_counts_as_500() -> None:
    """The app raising is counted as a 500 under its template, re-raised, and leaves nothing in flight."""
    metrics = ApiMetrics()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = _Route()
        raise RuntimeError("boom")

    middleware = RequestMetrics(app, metrics=metrics, templates=RouteTemplates(lambda: []))
    with pytest.raises(RuntimeError):
        await middleware(_scope(), _receive, _drop)
    assert metrics.in_flight == 0
    labels = {"method": "GET", "route": "/v1/things/{thing_id}", "status": "500"}
    assert _value(metrics, "kpsandbox_api_requests_total", **labels) == 1
