"""`kpsandbox listen --forward-to URL`: a temporary webhook endpoint and a live view of its deliveries.

Stripe's CLI forwards events itself, so its forwarded events have no retries, no delivery log and
nothing after the listener stops. Here the sandbox's own dispatcher (the `webhooks` app) does the
forwarding: `listen` only creates an ordinary endpoint for URL through the API, prints its signing
secret so the receiver can verify, and watches the endpoint's delivery log
(GET /v1/webhook_endpoints/{id}/deliveries) — so what the developer sees is exactly what a deployed
integration gets: signed POSTs, retried on the configured schedule, each attempt logged. When the
watch ends (Ctrl-C, `duration_s`, or `once` and the first delivery finished) the endpoint is deleted.

DeliveryLog is the one owner of what has been seen; the watch loop only feeds it pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from infra.errors import SandboxError
from producers.api_client import ApiClient
from schemas.api.events import WebhookDelivery, WebhookDeliveryList
from schemas.api.webhook_endpoints import WebhookEndpointCreate, WebhookEndpointWithSecret
from schemas.webhooks import WEBHOOK_EVENT_TYPES

POLL_S: Final = 0.5  # how often the delivery log is read
LISTEN_MAX_S: Final = 24 * 3600.0  # even without --duration, a forgotten listener stops after a day
ROWS_SHOWN_MAX: Final = 30  # the live table shows the latest attempts only
DELIVERIES_TRACKED_MAX: Final = 100_000  # summary counts beyond this are not kept (a day at ~1/s)


@dataclass(frozen=True)
class AttemptRow:
    """One attempt as the table shows it."""

    delivery: int
    attempted_at: datetime
    event_type: str
    event: str
    attempt: int
    status: str
    latency_ms: int
    ok: bool


@dataclass
class DeliveryLog:
    """What the watch has seen: every attempt once (in the order seen) and each delivery's latest status."""

    rows: deque[AttemptRow] = field(default_factory=lambda: deque(maxlen=ROWS_SHOWN_MAX))
    statuses: dict[int, str] = field(default_factory=dict)
    _seen: set[tuple[int, int]] = field(default_factory=set)

    def update(self, page: WebhookDeliveryList) -> list[AttemptRow]:
        """Takes a page of the delivery log (newest first); answers the attempts not seen before, oldest first."""
        new: list[AttemptRow] = []
        for delivery in reversed(page.data):
            if delivery.id in self.statuses or len(self.statuses) < DELIVERIES_TRACKED_MAX:
                self.statuses[delivery.id] = delivery.status
            for attempt in delivery.attempts:
                if (delivery.id, attempt.attempt) not in self._seen:
                    self._seen.add((delivery.id, attempt.attempt))
                    new.append(attempt_row(delivery, attempt.attempt))
        new.sort(key=lambda row: row.attempted_at)
        self.rows.extend(new)
        return new

    @property
    def finished(self) -> int:
        """Deliveries that reached `delivered` or `failed`."""
        return sum(1 for status in self.statuses.values() if status != "pending")

    def counts(self) -> Counter[str]:
        """Deliveries by status."""
        return Counter(self.statuses.values())


def attempt_row(delivery: WebhookDelivery, number: int) -> AttemptRow:
    """Attempt `number` of `delivery` as a row: its answer's status (or error), and what happens next."""
    attempt = next(a for a in delivery.attempts if a.attempt == number)
    answer = str(attempt.response_status) if attempt.response_status is not None else (attempt.error or "no answer")
    ok = attempt.response_status is not None and 200 <= attempt.response_status < 300
    latest = number == max(a.attempt for a in delivery.attempts)
    if not ok and latest and delivery.status == "pending" and delivery.next_attempt_at is not None:
        answer += f", retry at {delivery.next_attempt_at.astimezone().strftime('%H:%M:%S')}"
    elif not ok and latest and delivery.status == "failed":
        answer += ", failed"
    return AttemptRow(
        delivery=delivery.id,
        attempted_at=attempt.attempted_at,
        event_type=delivery.event_type,
        event=delivery.event,
        attempt=number,
        status=answer,
        latency_ms=attempt.latency_ms,
        ok=ok,
    )


@dataclass
class ListenResult:
    """How a listen ended: the endpoint, what was seen, how long, and whether the endpoint was deleted."""

    endpoint: WebhookEndpointWithSecret
    log: DeliveryLog
    listened_s: float
    deleted: bool


def watch_bound_s(duration_s: float | None) -> float:
    """How long a watch may last: `duration_s`, never more than LISTEN_MAX_S."""
    return LISTEN_MAX_S if duration_s is None else min(max(duration_s, 0.0), LISTEN_MAX_S)


async def listen(
    client: ApiClient,
    url: str,
    events: list[str] | None,
    *,
    stop: asyncio.Event,
    duration_s: float | None = None,
    once: bool = False,
    on_ready: Callable[[WebhookEndpointWithSecret], None],
    on_attempts: Callable[[list[AttemptRow], DeliveryLog], None],
) -> ListenResult:
    """Creates the endpoint, watches its deliveries until `stop`, the duration, or (`once`) the first
    finished delivery, then deletes it. Unknown event names are the API's 422, raised as a SandboxError."""
    wanted = events or list(WEBHOOK_EVENT_TYPES)
    endpoint = await client.create_endpoint(WebhookEndpointCreate.model_construct(url=url, events=wanted))
    started = time.monotonic()
    log = DeliveryLog()
    deleted = False
    try:
        on_ready(endpoint)
        deadline = started + watch_bound_s(duration_s)
        while True:
            on_attempts(log.update(await client.endpoint_deliveries(endpoint.id)), log)
            remaining = deadline - time.monotonic()
            if stop.is_set() or remaining <= 0 or (once and log.finished):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(POLL_S, remaining))
    finally:
        with contextlib.suppress(SandboxError):
            await client.delete_endpoint(endpoint.id)
            deleted = True
    return ListenResult(endpoint=endpoint, log=log, listened_s=time.monotonic() - started, deleted=deleted)


def summary(result: ListenResult, url: str) -> str:
    """The one line printed when listening ends."""
    counts = result.log.counts()
    total = sum(counts.values())
    states = ", ".join(f"{counts[status]} {status}" for status in ("delivered", "failed", "pending"))
    gone = (
        f"endpoint {result.endpoint.id} deleted"
        if result.deleted
        else f"endpoint {result.endpoint.id} NOT deleted (delete it: DELETE /v1/webhook_endpoints/{result.endpoint.id})"
    )
    return f"listened {result.listened_s:.0f} s: {total} deliveries to {url} ({states}); {gone}"
