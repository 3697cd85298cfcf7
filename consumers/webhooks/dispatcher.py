"""The webhook dispatcher: POSTs due deliveries to their endpoints, signed, and records every attempt.

One loop (`Dispatcher.run`) polls api_webhook_deliveries every POLL_INTERVAL_S and claims the due
ones (consumers/webhooks/store.py): at most PER_ENDPOINT_MAX in flight per endpoint and
IN_FLIGHT_MAX in all, so an endpoint that hangs holds at most PER_ENDPOINT_MAX slots while every
other endpoint's deliveries keep being claimed and sent. Each claimed delivery is one task: sign
(Standard Webhooks, consumers/webhooks/signing.py, with the secrets opened by infra/sealed_secrets.py),
POST with httpx (REQUEST_TIMEOUT_S for the whole request, redirects not followed), then record the
attempt and the decision of consumers/webhooks/retries.py in one transaction.

At-least-once: a claim is a lease (LEASE_S, longer than any attempt). A dispatcher that dies
mid-attempt leaves the delivery to fall due again when the lease lapses, and it is sent again with
the same `webhook-id` (the event's id), which receivers deduplicate on.

`Dispatcher` is the only writer of its in-flight counts; tasks decrement them when they end. It
also feeds its WebhookMetrics (consumers/webhooks/metrics.py): each attempt as it is recorded, and
the backlog gauges from one query every BACKLOG_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import httpx

from consumers.webhooks.metrics import BACKLOG_INTERVAL_S, WebhookMetrics, attempt_result, read_backlog
from consumers.webhooks.retries import decide
from consumers.webhooks.signing import sign_headers
from consumers.webhooks.store import DeliveryStore, sealed_secrets
from infra.db import CONNECT_TIMEOUT_S, database_unreachable, migrate
from infra.sealed_secrets import unseal
from infra.secrets import deployment_key
from infra.settings import Settings
from schemas.webhooks import WebhookEvent

log = logging.getLogger(__name__)

POLL_INTERVAL_S: Final = 0.1
REQUEST_TIMEOUT_S: Final = 10.0  # one attempt, connect to last byte read
LEASE_S: Final = 60.0  # a claimed delivery falls due again this long after its claim (> REQUEST_TIMEOUT_S)
PER_ENDPOINT_MAX: Final = 4  # attempts in flight to one endpoint
IN_FLIGHT_MAX: Final = 64  # attempts in flight in all
RESPONSE_HEAD_BYTES: Final = 512  # of each answer's body, kept in the delivery log
ERROR_CHARS_MAX: Final = 300
POOL_SIZE_MAX: Final = 4
STOP_TIMEOUT_S: Final = REQUEST_TIMEOUT_S + 5.0  # in-flight attempts finish (or time out) before exit
USER_AGENT: Final = "kpsandbox-webhooks/1"


@dataclass
class DispatchSummary:
    """What one run did."""

    attempts: int = 0
    delivered: int = 0
    failed: int = 0  # deliveries that ended failed
    retried: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST got back: an HTTP status and the body's first bytes, or the error it met."""

    status: int | None
    head: str
    error: str | None
    latency_ms: int
    timed_out: bool = False  # no answer within REQUEST_TIMEOUT_S (the metrics' `timeout` result)


def event_body(row: dict[str, Any]) -> bytes:
    """The JSON body of a delivery of the claimed row's event (the same bytes on every retry)."""
    event = WebhookEvent.model_validate(
        {"id": row["event_id"], "type": row["type"], "created_at": row["created_at"], "data": _data(row["data"])}
    )
    return event.model_dump_json().encode("utf-8")


def _data(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POSTs once within REQUEST_TIMEOUT_S; never raises for what the receiver did."""
    started = time.monotonic()
    timed_out = False
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                head = b""
                async for chunk in response.aiter_bytes():
                    head += chunk
                    if len(head) >= RESPONSE_HEAD_BYTES:
                        break
            status: int | None = response.status_code
            error = None
    except TimeoutError:
        status, head, error, timed_out = None, b"", f"no answer within {REQUEST_TIMEOUT_S:g} s", True
    except (httpx.HTTPError, httpx.InvalidURL) as failure:  # refused, reset, not HTTP, a bad URL
        status, head, error = None, b"", f"{type(failure).__name__}: {failure}"[:ERROR_CHARS_MAX]
        timed_out = isinstance(failure, httpx.TimeoutException)
    except Exception as failure:
        # Whatever a tenant's URL does (port 99999 fails inside anyio as an ExceptionGroup) is a
        # recorded failed attempt, never a dead dispatcher task.
        status, head, error = None, b"", f"{type(failure).__name__}: {failure}"[:ERROR_CHARS_MAX]
    latency_ms = int((time.monotonic() - started) * 1000)
    text = head[:RESPONSE_HEAD_BYTES].decode("utf-8", errors="replace")
    return Answer(status, text, error, latency_ms, timed_out)


class Dispatcher:
    """One dispatcher: its HTTP client, its claims in flight and its summary (the only writer of each)."""

    def __init__(self, settings: Settings, metrics: WebhookMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else WebhookMetrics()
        self.delays_s = settings.webhook_retry_delays_s
        self.summary = DispatchSummary()
        self._in_flight: dict[str, int] = {}  # endpoint id → attempts in flight
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, *, stop: asyncio.Event) -> DispatchSummary:
        """Dispatches due deliveries until `stop` is set, then lets attempts in flight finish."""
        await migrate(self.settings.dsn)
        key = deployment_key(self.settings)
        try:
            pool = await asyncpg.create_pool(
                self.settings.dsn, min_size=1, max_size=POOL_SIZE_MAX, timeout=CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(self.settings.dsn) from error
        limits = httpx.Limits(max_connections=IN_FLIGHT_MAX, max_keepalive_connections=IN_FLIGHT_MAX)
        headers = {"user-agent": USER_AGENT, "content-type": "application/json"}
        try:
            async with httpx.AsyncClient(
                follow_redirects=False, limits=limits, headers=headers, timeout=REQUEST_TIMEOUT_S
            ) as client:
                store = DeliveryStore(pool)
                backlog = asyncio.create_task(self._watch_backlog(pool, stop), name="webhooks-backlog")
                try:
                    await self._loop(store, client, key, stop)
                finally:
                    backlog.cancel()
                    await asyncio.wait([backlog], timeout=STOP_TIMEOUT_S)
        finally:
            await pool.close()
        return self.summary

    async def _loop(self, store: DeliveryStore, client: httpx.AsyncClient, key: bytes, stop: asyncio.Event) -> None:
        while not stop.is_set():  # bounded by `stop`
            try:
                claimed = await store.claim(
                    in_flight=dict(self._in_flight),
                    per_endpoint_max=PER_ENDPOINT_MAX,
                    batch_max=IN_FLIGHT_MAX - sum(self._in_flight.values()),
                    lease_s=LEASE_S,
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("webhooks: PostgreSQL did not answer (%s); trying again", error)
                claimed = []
            for row in claimed:
                self._start(store, client, key, row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_INTERVAL_S)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        for task in list(self._tasks):  # only past the request timeout: the lease makes them due again
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)

    async def _watch_backlog(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Refreshes the backlog gauges every BACKLOG_INTERVAL_S until `stop` is set."""
        while not stop.is_set():  # bounded by `stop`
            try:
                await read_backlog(pool, self.metrics)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("webhooks: the backlog query failed (%s); the gauges keep their last values", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKLOG_INTERVAL_S)

    def _start(self, store: DeliveryStore, client: httpx.AsyncClient, key: bytes, row: dict[str, Any]) -> None:
        endpoint = row["endpoint_id"]
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        task = asyncio.create_task(self._attempt(store, client, key, row), name=f"webhook-{row['id']}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._ended(done, endpoint))

    def _ended(self, task: asyncio.Task[None], endpoint: str) -> None:
        self._tasks.discard(task)
        self._in_flight[endpoint] -= 1
        if not self._in_flight[endpoint]:
            del self._in_flight[endpoint]
        if not task.cancelled() and task.exception() is not None:
            # The lease makes the delivery due again; the attempt is not lost, only unrecorded.
            log.warning("webhooks: an attempt could not be recorded: %s", task.exception())

    async def _attempt(self, store: DeliveryStore, client: httpx.AsyncClient, key: bytes, row: dict[str, Any]) -> None:
        """One attempt of one claimed delivery: sign, POST, record, decide."""
        body = event_body(row)
        try:
            opened = [
                unseal(key, sealed, bound_to=row["endpoint_id"]) for sealed in sealed_secrets(row, await store.now())
            ]
        except ValueError as error:  # the key file was replaced: recorded, retried, and fixed by a rotation
            answer = Answer(None, "", str(error)[:ERROR_CHARS_MAX], 0)
        else:
            headers = sign_headers(secrets=opened, webhook_id=row["event_id"], timestamp_s=int(time.time()), body=body)
            answer = await post(client, row["url"], body, headers)
        decision = decide(
            response_status=answer.status, attempt=row["attempts"], delays_s=self.delays_s, now=await store.now()
        )
        await store.finish(
            delivery_id=row["id"],
            endpoint_id=row["endpoint_id"],
            attempt=row["attempts"],
            response_status=answer.status,
            error=answer.error,
            latency_ms=answer.latency_ms,
            response_head=answer.head,
            decision=decision,
        )
        self._count(decision.status)
        result = attempt_result(status=answer.status, timed_out=answer.timed_out)
        self.metrics.attempted(result=result, seconds=answer.latency_ms / 1000, delivery_status=decision.status)

    def _count(self, status: str) -> None:
        self.summary.attempts += 1
        if status == "delivered":
            self.summary.delivered += 1
        elif status == "failed":
            self.summary.failed += 1
        else:
            self.summary.retried += 1


async def run_dispatcher(
    settings: Settings, *, stop: asyncio.Event, metrics: WebhookMetrics | None = None
) -> DispatchSummary:
    """Runs one dispatcher until `stop` is set, recording into `metrics` (a fresh one if None)."""
    return await Dispatcher(settings, metrics).run(stop=stop)
