"""`kpsandbox listen`: the delivery log it keeps, and its life cycle against a fake API — the endpoint made,
the log polled, the endpoint deleted at the end, bounded by --duration or --once; unknown event names
are the API's error."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from infra.errors import SandboxError
from producers.api_client import ApiClient
from producers.listen import LISTEN_MAX_S, DeliveryLog, listen, summary, watch_bound_s
from schemas.api.events import WebhookDeliveryList

ENDPOINT_ID = "we_" + "e" * 32
NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def _attempt(number: int, status: int | None) -> dict[str, Any]:
    return {
        "attempt": number, "response_status": status, "error": None if status else "timeout", "latency_ms": 7,
        "response_head": "", "attempted_at": (NOW + timedelta(seconds=number)).isoformat(),
    }  # fmt: skip


def _delivery(delivery_id: int, status: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": delivery_id, "event": f"evt_{delivery_id:032x}", "event_type": "payment.succeeded",
        "webhook_endpoint": ENDPOINT_ID, "status": status, "origin": "event",
        "next_attempt_at": (NOW + timedelta(minutes=1)).isoformat() if status == "pending" else None,
        "attempts": attempts, "created_at": NOW.isoformat(),
    }  # fmt: skip


def _page(*deliveries: dict[str, Any]) -> WebhookDeliveryList:
    return WebhookDeliveryList.model_validate({"data": list(deliveries), "has_more": False})


def test_the_log_shows_each_attempt_once_and_counts_deliveries_by_status() -> None:
    """A retried delivery shows its failed attempt (with the retry time) then, once delivered, only
    the new attempt is new; the counts follow the latest status."""
    log = DeliveryLog()
    first = log.update(_page(_delivery(1, "pending", [_attempt(1, 500)])))
    assert [(row.attempt, row.ok) for row in first] == [(1, False)] and "500, retry at" in first[0].status
    second = log.update(_page(_delivery(1, "delivered", [_attempt(1, 500), _attempt(2, 200)])))
    assert [(row.attempt, row.status, row.ok) for row in second] == [(2, "200", True)]
    log.update(_page(_delivery(2, "failed", [_attempt(1, None)]), _delivery(1, "delivered", [])))
    assert log.counts() == {"delivered": 1, "failed": 1} and log.finished == 2
    assert [row.status for row in log.rows][-1] == "timeout, failed"


def test_a_watch_is_always_bounded() -> None:
    """No --duration still stops after LISTEN_MAX_S; a duration is used as given, never beyond the cap."""
    assert watch_bound_s(None) == LISTEN_MAX_S
    assert watch_bound_s(2.5) == 2.5
    assert watch_bound_s(10 * LISTEN_MAX_S) == LISTEN_MAX_S


class FakeApi:
    """Answers the three calls listen makes; the deliveries page grows as `pages` says."""

    def __init__(self, pages: list[list[dict[str, Any]]], create_status: int = 201) -> None:
        self.pages = pages
        self.create_status = create_status
        self.calls: list[str] = []
        self.created: dict[str, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            self.created = json.loads(request.content)
            if self.create_status != 201:
                problem = {"code": "invalid_parameter", "param": "events.0", "detail": "unknown event type 'nope'"}
                return httpx.Response(self.create_status, json=problem)
            return httpx.Response(201, json=self._endpoint())
        if request.method == "DELETE":
            return httpx.Response(200, json={"id": ENDPOINT_ID, "deleted": True})
        page = self.pages[min(len([c for c in self.calls if c.startswith("GET")]), len(self.pages)) - 1]
        return httpx.Response(200, json={"object": "list", "data": page, "has_more": False})

    def _endpoint(self) -> dict[str, Any]:
        return {
            "id": ENDPOINT_ID, "url": self.created["url"], "events": self.created["events"], "status": "enabled",
            "secret_last4": "abcd", "previous_secret_expires_at": None, "secret": "whsec_" + "A" * 32,
            "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(),
        }  # fmt: skip


async def _listen(api: FakeApi, **options: Any) -> tuple[Any, list[str]]:
    ready: list[str] = []
    async with ApiClient("http://sandbox", "sk_test_x", transport=httpx.MockTransport(api)) as client:
        result = await listen(
            client, "http://localhost:4242/hook", options.pop("events", None), stop=asyncio.Event(),
            on_ready=lambda endpoint: ready.append(endpoint.secret), on_attempts=lambda new, log: None, **options,
        )  # fmt: skip
    return result, ready


async def test_a_duration_bounds_the_watch_and_the_endpoint_is_deleted() -> None:
    """--duration 0.6: the endpoint is made for every event type, its log read more than once, then deleted."""
    api = FakeApi([[], [_delivery(1, "delivered", [_attempt(1, 200)])]])
    result, ready = await _listen(api, duration_s=0.6)
    assert ready == ["whsec_" + "A" * 32]
    assert len(api.created["events"]) == 14 and api.created["url"] == "http://localhost:4242/hook"
    assert (
        api.calls[0] == "POST /v1/webhook_endpoints" and api.calls[-1] == f"DELETE /v1/webhook_endpoints/{ENDPOINT_ID}"
    )
    assert api.calls.count(f"GET /v1/webhook_endpoints/{ENDPOINT_ID}/deliveries") >= 2
    assert result.deleted and result.log.counts() == {"delivered": 1}
    assert "1 deliveries" in summary(result, "http://x") and f"endpoint {ENDPOINT_ID} deleted" in summary(result, "x")


async def test_once_stops_after_the_first_finished_delivery() -> None:
    """--once (with a long duration) returns as soon as one delivery is delivered or failed."""
    api = FakeApi([[_delivery(1, "pending", [])], [_delivery(1, "failed", [_attempt(1, 500)])]])
    result, _ = await asyncio.wait_for(_listen(api, once=True, duration_s=60, events=["payment.failed"]), 10)
    assert api.created["events"] == ["payment.failed"] and result.log.counts() == {"failed": 1} and result.deleted


async def test_an_unknown_event_name_is_the_apis_error_and_nothing_is_left_behind() -> None:
    """The API's 422 naming the event becomes the error; no endpoint was made, so none is deleted."""
    api = FakeApi([], create_status=422)
    with pytest.raises(SandboxError, match=r"422 invalid_parameter \(param events.0\): unknown event type 'nope'"):
        await _listen(api, events=["nope"], duration_s=1)
    assert api.calls == ["POST /v1/webhook_endpoints"]
