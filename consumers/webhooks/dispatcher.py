"""The webhook dispatcher: POSTs due deliveries to their endpoints, signed, and records every attempt.

CLAIM_LANES loops (`Lane.run`, consumers/webhooks/lanes.py) claim due deliveries of api_webhook_deliveries
(consumers/webhooks/ store.py), each with its share of the bounds: at most PER_ENDPOINT_MAX in flight per
endpoint and IN_FLIGHT_MAX in all across the lanes of every dispatcher process (`process_bounds`;
KPSANDBOX_WEBHOOK_PROCESSES, consumers/webhooks/workers.py), so an endpoint that hangs holds at most PER_ENDPOINT_MAX
slots while every other endpoint's deliveries keep being claimed and sent. While a lane's last claim filled
every free slot (a backlog) it claims again as soon as a quarter of its slots are free, else as soon as
deliveries are queued (a notification on DUE_CHANNEL, migration 0037; at most one claim per CLAIM_GAP_S so a
stream of small commits does not become a stream of claims) or POLL_INTERVAL_S has passed. The lanes' claims
overlap, so one lane's POSTs run while the other waits on PostgreSQL. Each claimed delivery is one task: sign
(Standard Webhooks, consumers/webhooks/signing.py, with the secrets opened by infra/sealed_secrets.py), POST
with consumers/webhooks/http.py (REQUEST_TIMEOUT_S for the whole request, redirects not followed), then hand
the attempt and the decision of consumers/webhooks/retries.py to its lane's Recorder, which writes whatever
attempts have finished meanwhile in one transaction (group commit) and wakes each task once its attempt is
committed.

At-least-once: a claim is a lease (lanes.LEASE_S, longer than any attempt). A dispatcher that dies mid-attempt
leaves the delivery to fall due again when the lease lapses, and it is sent again with the same `webhook-id`
(the event's id), which receivers deduplicate on.

Each `Lane` is the only writer of its in-flight counts; tasks decrement them when they end. The `Dispatcher`
owns the lanes, the HTTP client and the summary, and feeds its WebhookMetrics (consumers/webhooks/metrics.py):
each attempt as it is recorded, and the backlog gauges from one query every BACKLOG_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
from pydantic_core import to_json

from consumers.webhooks.http import HttpClient
from consumers.webhooks.lanes import Lane, Recorder, lane_bounds
from consumers.webhooks.metrics import BACKLOG_INTERVAL_S, WebhookMetrics, attempt_result, read_backlog
from consumers.webhooks.retries import decide
from consumers.webhooks.signing import sign_headers
from consumers.webhooks.store import DeliveryStore, Finished, sealed_secrets
from infra.db import CONNECT_TIMEOUT_S, database_unreachable, keep_session, migrate
from infra.sealed_secrets import unseal
from infra.secrets import deployment_key
from infra.settings import Settings

log = logging.getLogger(__name__)

DUE_CHANNEL: Final = "kpsandbox_webhooks_due"  # notified when deliveries are queued (migration 0037)
LISTEN_RETRY_S: Final = 5.0  # a lost LISTEN connection is made again after this
REQUEST_TIMEOUT_S: Final = 10.0  # one attempt, connect to last byte read
PER_ENDPOINT_MAX: Final = 32  # attempts in flight to one endpoint
IN_FLIGHT_MAX: Final = 512  # attempts in flight in all
RESPONSE_HEAD_BYTES: Final = 512  # of each answer's body, kept in the delivery log
ERROR_CHARS_MAX: Final = 300
CLAIM_LANES: Final = 2  # claim loops, each with its share of PER_ENDPOINT_MAX and IN_FLIGHT_MAX
POOL_SIZE_MAX: Final = 2 * CLAIM_LANES + 2  # a claim and a group commit per lane, the backlog, one spare
STOP_TIMEOUT_S: Final = REQUEST_TIMEOUT_S + 5.0  # in-flight attempts finish (or time out) before exit
USER_AGENT: Final = "kpsandbox-webhooks/1"
OPENED_SECRETS_MAX: Final = 1_024  # opened secrets kept, by (endpoint, sealed bytes); emptied when full


@dataclass
class DispatchSummary:
    """What one run did."""

    attempts: int = 0
    delivered: int = 0
    failed: int = 0  # deliveries that ended failed
    retried: int = 0

    def add(self, other: DispatchSummary) -> None:
        """Adds another run's counts (a worker process's) to these."""
        self.attempts += other.attempts
        self.delivered += other.delivered
        self.failed += other.failed
        self.retried += other.retried


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST got back: an HTTP status and the body's first bytes, or the error it met."""

    status: int | None
    head: str
    error: str | None
    latency_ms: int
    timed_out: bool = False  # no answer within REQUEST_TIMEOUT_S (the metrics' `timeout` result)


def event_body(row: dict[str, Any]) -> bytes:
    """The JSON body of a delivery of the claimed row's event (the same bytes on every retry): the
    envelope of schemas/webhooks.py (`object`, `id`, `type`, `created_at`, `data`) around the event's
    stored data as PostgreSQL prints it. Not parsed and validated again: every field comes from
    api_events, written through that model (parsing, validating and printing it again took a twentieth
    of a delivery's CPU). A unit test checks that the body validates as a WebhookEvent."""
    data = row["data"]
    return b"".join(
        (
            b'{"object":"event","id":',
            to_json(row["event_id"]),
            b',"type":',
            to_json(row["type"]),
            b',"created_at":',
            to_json(row["created_at"]),
            b',"data":',
            data.encode() if isinstance(data, str) else to_json(data),
            b"}",
        )
    )


def http_session() -> HttpClient:
    """The dispatcher's HTTP client (consumers/webhooks/http.py): keep-alive connections (as many idle per
    origin as may be in flight: every endpoint may share one origin), our user agent, RESPONSE_HEAD_BYTES
    of each answer's body kept."""
    return HttpClient(user_agent=USER_AGENT, head_bytes=RESPONSE_HEAD_BYTES, idle_per_origin_max=IN_FLIGHT_MAX)


async def post(session: HttpClient, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POSTs once within REQUEST_TIMEOUT_S, redirects not followed; never raises for what the receiver did."""
    started = time.monotonic()
    timed_out = False
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status, head = await session.post(url, body, headers)
        error = None
    except TimeoutError:
        status, head, error, timed_out = None, b"", f"no answer within {REQUEST_TIMEOUT_S:g} s", True
    except Exception as failure:
        # Whatever a tenant's URL does — refused, reset, not HTTP, a port out of range — is a recorded
        # failed attempt, never a dead dispatcher task.
        status, head, error = None, b"", f"{type(failure).__name__}: {failure}"[:ERROR_CHARS_MAX]
    latency_ms = int((time.monotonic() - started) * 1000)
    text = head[:RESPONSE_HEAD_BYTES].decode("utf-8", errors="replace")
    return Answer(status, storable(text), None if error is None else storable(error), latency_ms, timed_out)


def storable(text: str) -> str:
    """`text` with U+0000, which PostgreSQL's text type refuses, shown as U+FFFD: an answer holding one
    must not make its attempt unrecordable (and the delivery sent again at every lease)."""
    return text.replace("\x00", "\ufffd")


class Dispatcher:
    """One dispatcher: its HTTP client, its lanes and its summary (the only writer of each)."""

    def __init__(self, settings: Settings, metrics: WebhookMetrics | None = None, *, process: int = 0) -> None:
        if not 0 <= process < settings.webhook_processes:
            raise ValueError(f"process {process} of {settings.webhook_processes} webhook dispatcher processes")
        self.settings = settings
        self.process = process  # which of settings.webhook_processes this is (0: the first, which reads the backlog)
        self.metrics = metrics if metrics is not None else WebhookMetrics()
        self.delays_s = settings.webhook_retry_delays_s
        self.summary = DispatchSummary()
        # Opening a sealed secret derives its AES key each time; a rotation seals new bytes, so a
        # cached opening never outlives the secret it belongs to.
        self._opened: dict[tuple[str, bytes], str] = {}
        self.lanes: list[Lane] = []  # made by `run`

    async def run(self, *, stop: asyncio.Event) -> DispatchSummary:
        """Dispatches due deliveries until `stop` is set, then lets attempts in flight finish."""
        if self.process == 0:  # a worker runs only beside process 0, which has migrated the database
            await migrate(self.settings.dsn)
        key = deployment_key(self.settings)
        try:
            # Claims, records and the backlog query set no session state (LISTEN has its own connection).
            pool = await asyncpg.create_pool(
                self.settings.dsn, min_size=1, max_size=POOL_SIZE_MAX, timeout=CONNECT_TIMEOUT_S, reset=keep_session
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(self.settings.dsn) from error
        try:
            async with http_session() as session:
                store = DeliveryStore(pool)

                async def attempt(recorder: Recorder, row: dict[str, Any], claimed_at: float) -> bool:
                    return await self._attempt(recorder, session, key, row, claimed_at)

                self.lanes = lanes = [
                    Lane(store, attempt, per_endpoint_max=each, in_flight_max=total, stop_timeout_s=STOP_TIMEOUT_S)
                    for each, total in process_bounds(self.process, self.running_processes())
                ]
                helpers = [asyncio.create_task(self._listen(lanes, stop), name="webhooks-listen")]
                if self.process == 0:  # one backlog query for the whole dispatcher
                    helpers.append(asyncio.create_task(self._watch_backlog(pool, stop), name="webhooks-backlog"))
                try:
                    await asyncio.gather(*(lane.run(stop) for lane in lanes))
                finally:
                    for helper in helpers:
                        helper.cancel()
                    await asyncio.wait(helpers, timeout=STOP_TIMEOUT_S)
        finally:
            await pool.close()
        return self.summary

    def running_processes(self) -> int:
        """How many processes share the bounds at the start: a worker runs only beside all the others, and
        process 0 starts alone (consumers/webhooks/workers.py scales it)."""
        return 1 if self.process == 0 else self.settings.webhook_processes

    def share(self, processes: int) -> None:
        """Process 0's lanes take their share of the bounds among `processes` (1: all of them)."""
        for lane, (each, total) in zip(self.lanes, process_bounds(self.process, processes), strict=True):
            lane.bound(each, total)

    def within_bounds(self) -> bool:
        """True when every lane's attempts in flight fit its current bounds."""
        return all(lane.within_bounds() for lane in self.lanes)

    def backlogged_for(self, now: float) -> float:
        """Seconds for which every lane's every claim has filled every free slot (0: not backlogged)."""
        since = [lane.backlogged_since for lane in self.lanes]
        if not since or any(s is None for s in since):
            return 0.0
        return now - max(s for s in since if s is not None)

    def calm_for(self, now: float) -> float:
        """Seconds since any lane's claim last filled every free slot."""
        return now - max((lane.last_backlogged for lane in self.lanes), default=float("-inf"))

    def waited_s(self) -> float:
        """The longest any healthy endpoint's row of the lanes' last claims had been due when claimed."""
        return max((lane.waited_s for lane in self.lanes), default=0.0)

    async def _listen(self, lanes: list[Lane], stop: asyncio.Event) -> None:
        """Wakes every lane whenever deliveries are queued (LISTEN DUE_CHANNEL on a connection of its own;
        migration 0037 notifies at each commit that queues some) until `stop` is set. While it cannot
        listen, the lanes still claim every POLL_INTERVAL_S; it tries again every LISTEN_RETRY_S."""

        def wake(*_: object) -> None:
            for lane in lanes:
                lane.wake()

        while not stop.is_set():  # bounded by `stop`; one pass per connection
            lost = asyncio.Event()
            try:
                db = await asyncpg.connect(self.settings.dsn, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError) as error:
                log.warning("webhooks: cannot listen for new deliveries (%s); polling meanwhile", error)
            else:
                try:
                    db.add_termination_listener(lambda _, lost=lost: lost.set())
                    await db.add_listener(DUE_CHANNEL, wake)
                    wake()  # whatever was queued before the LISTEN
                    ended = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                    _, pending = await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
                    for waiter in pending:
                        waiter.cancel()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    log.warning("webhooks: listening for new deliveries failed (%s); polling meanwhile", error)
                finally:
                    with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                        await db.close(timeout=CONNECT_TIMEOUT_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LISTEN_RETRY_S)

    async def _watch_backlog(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Refreshes the backlog gauges every BACKLOG_INTERVAL_S until `stop` is set."""
        while not stop.is_set():  # bounded by `stop`
            try:
                await read_backlog(pool, self.metrics)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("webhooks: the backlog query failed (%s); the gauges keep their last values", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKLOG_INTERVAL_S)

    async def _attempt(
        self, recorder: Recorder, session: HttpClient, key: bytes, row: dict[str, Any], claimed_at: float
    ) -> bool:
        """One attempt of one claimed delivery: sign, POST, decide, record; True when answered 2xx. "Now" on
        the database's clock (which next_attempt_at is compared with) is the claim's `now()` plus the time
        since the claim."""

        def db_now() -> datetime:
            return row["claimed_at"] + timedelta(seconds=time.monotonic() - claimed_at)

        body = event_body(row)
        try:
            opened = [self._open(key, sealed, row["endpoint_id"]) for sealed in sealed_secrets(row, db_now())]
        except ValueError as error:  # the key file was replaced: recorded, retried, and fixed by a rotation
            answer = Answer(None, "", str(error)[:ERROR_CHARS_MAX], 0)
        else:
            headers = sign_headers(secrets=opened, webhook_id=row["event_id"], timestamp_s=int(time.time()), body=body)
            answer = await post(session, row["url"], body, headers)
        decision = decide(response_status=answer.status, attempt=row["attempts"], delays_s=self.delays_s, now=db_now())
        await recorder.record(
            Finished(
                delivery_id=row["id"],
                endpoint_id=row["endpoint_id"],
                attempt=row["attempts"],
                response_status=answer.status,
                error=answer.error,
                latency_ms=answer.latency_ms,
                response_head=answer.head,
                decision=decision,
            )
        )
        self._count(decision.status)
        result = attempt_result(status=answer.status, timed_out=answer.timed_out)
        self.metrics.attempted(result=result, seconds=answer.latency_ms / 1000, delivery_status=decision.status)
        return result == "delivered"

    def _open(self, key: bytes, sealed: bytes, endpoint: str) -> str:
        """An endpoint's secret, opened once and then remembered (see `_opened`)."""
        found = self._opened.get((endpoint, sealed))
        if found is None:
            if len(self._opened) >= OPENED_SECRETS_MAX:
                self._opened.clear()
            found = self._opened[(endpoint, sealed)] = unseal(key, sealed, bound_to=endpoint)
        return found

    def _count(self, status: str) -> None:
        self.summary.attempts += 1
        if status == "delivered":
            self.summary.delivered += 1
        elif status == "failed":
            self.summary.failed += 1
        else:
            self.summary.retried += 1


def process_bounds(process: int, processes: int) -> list[tuple[int, int]]:
    """The (per-endpoint, in-all) bounds of each lane of dispatcher process `process` of `processes`: the
    CLAIM_LANES × `processes` lanes share PER_ENDPOINT_MAX and IN_FLIGHT_MAX, so the bounds hold for the
    whole dispatcher however many processes it runs."""
    shares = lane_bounds(CLAIM_LANES * processes, PER_ENDPOINT_MAX, IN_FLIGHT_MAX)
    mine = shares[process * CLAIM_LANES : (process + 1) * CLAIM_LANES]
    if not mine:
        raise ValueError(f"{processes} processes leave process {process} no share of {PER_ENDPOINT_MAX} per endpoint")
    return mine


async def run_dispatcher(
    settings: Settings, *, stop: asyncio.Event, metrics: WebhookMetrics | None = None, process: int = 0
) -> DispatchSummary:
    """Runs dispatcher process `process` (of settings.webhook_processes) until `stop` is set, recording
    into `metrics` (a fresh one if None)."""
    return await Dispatcher(settings, metrics, process=process).run(stop=stop)
