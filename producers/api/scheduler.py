"""The API's scheduled work: what must happen to a payment later, done when its time comes.

Rows of api_scheduled (migration 0026), written in the same transaction as the payment they
belong to, so nothing scheduled is lost when the API stops; the loop here, started by the API's
lifespan, does each row once it is due and deletes it in the same transaction:

- `publish` — send the stored `payment.requested` now (the delayed-success magic value);
- `time_out` — a payment still `processing` (the no-answer magic value) becomes `failed` /
  `timed_out`, and its `payment.failed` webhook event is recorded with it;
- `expire` — an authorisation's `expires_at` has come: send the stored `payment.void_requested`,
  dated at that time, on the payer's partition. The ledger's clock for the API's requests there
  moves to `expires_at`, which expires the authorisation *before* the void is decided (docs/ledger.md,
  "The clock"), so the payment ends `expired` from the ledger's own `payment.expired` outcome; the
  void itself is refused (`pending_transfer_expired`) and answers nothing the API waits for.
  Without it an authorisation would expire only when the API next sent something on that partition.
  A payment already ended (captured, canceled, failed) skips it.

Each poll also sweeps (`sweep`, producers/api/announce.py): pending requests-to-pay whose
`expires_at` has passed are written `expired` with their `payment_request.expired` event, and
accounts the ledger has opened get their `account.opened` event.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so two API processes never do one twice. A
publish Kafka does not acknowledge stays scheduled and is tried again RETRY_S later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg
from pydantic import TypeAdapter

from producers.api.announce import announce_opened_accounts, expire_due_requests, payment_failed_event
from producers.api.payment_rows import PAYMENT_COLUMNS
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S
from schemas.api.payments import failure_message
from schemas.envelope import Envelope
from schemas.payments import PaymentRequested, PaymentVoidRequested

log = logging.getLogger(__name__)

Action = Literal["publish", "time_out", "expire"]
Publish = Callable[[Envelope], Awaitable[None]]

POLL_INTERVAL_S: Final = 0.2
BATCH_MAX: Final = 100  # rows done per poll
RETRY_S: Final = 5.0  # a publish Kafka refused is tried again this much later
TIMED_OUT: Final = "timed_out"
ENDED_STATUSES: Final = ("succeeded", "failed", "canceled", "expired")
SCHEDULED_EVENT: Final[TypeAdapter[PaymentRequested | PaymentVoidRequested]] = TypeAdapter(
    PaymentRequested | PaymentVoidRequested
)

# On a test clock (migration 0035) a row waits at due_at 'infinity' until an advance passes its
# clock_due_at (producers/api/test_clocks.py); off a clock, clock_due_at is NULL.
INSERT_SCHEDULED: Final = """
INSERT INTO api_scheduled (payment_id, action, due_at, event, test_clock_id, clock_due_at)
VALUES ($1, $2, CASE WHEN $5::text IS NULL THEN $3::timestamptz ELSE 'infinity'::timestamptz END, $4, $5,
        CASE WHEN $5::text IS NULL THEN NULL ELSE $3::timestamptz END)
ON CONFLICT (payment_id, action) DO NOTHING
"""
CLAIM_DUE: Final = f"""
SELECT scheduled.payment_id, scheduled.action, scheduled.event, payment.status
FROM api_scheduled AS scheduled JOIN api_payments AS payment ON payment.id = scheduled.payment_id
WHERE scheduled.due_at <= now()
ORDER BY scheduled.due_at
LIMIT {BATCH_MAX}
FOR UPDATE OF scheduled SKIP LOCKED
"""
DELETE_SCHEDULED: Final = "DELETE FROM api_scheduled WHERE payment_id = $1 AND action = $2"
POSTPONE: Final = (
    "UPDATE api_scheduled SET due_at = now() + make_interval(secs => $3) WHERE payment_id = $1 AND action = $2"
)
TIME_OUT_PAYMENT: Final = f"""
UPDATE api_payments
SET status = 'failed', failure_code = $2, failure_message = $3, awaiting_event_id = NULL, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING tenant_id, {PAYMENT_COLUMNS}
"""


async def schedule(
    connection: asyncpg.Connection | asyncpg.Pool,
    *,
    payment_id: str,
    action: Action,
    due_at: datetime,
    event: Envelope | None = None,
    test_clock_id: str | None = None,
) -> None:
    """Schedules `action` for a payment at `due_at` (with the request to send, for publish and expire);
    with `test_clock_id`, `due_at` is on that clock: the row waits for an advance past it."""
    body = None if event is None else event.model_dump_json()
    await connection.execute(INSERT_SCHEDULED, payment_id, action, due_at, body, test_clock_id)


async def run_due(pool: asyncpg.Pool, publish: Publish) -> int:
    """Does every scheduled row now due (at most BATCH_MAX); returns how many were done."""
    done = 0
    async with pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
        for row in await connection.fetch(CLAIM_DUE):
            payment_id, action = row["payment_id"], row["action"]
            if action == "time_out":
                failed = await connection.fetchrow(TIME_OUT_PAYMENT, payment_id, TIMED_OUT, failure_message(TIMED_OUT))
                if failed is not None:  # its payment.failed commits with it (producers/api/announce.py)
                    await payment_failed_event(connection, tenant_id=failed["tenant_id"], row=failed)
            elif action == "publish" or row["status"] not in ENDED_STATUSES:
                try:
                    await publish(SCHEDULED_EVENT.validate_json(row["event"]))
                except KAFKA_UNAVAILABLE as error:
                    log.warning(
                        "scheduled %s of %s not acknowledged by Kafka (%s); retrying", action, payment_id, error
                    )
                    await connection.execute(POSTPONE, payment_id, action, RETRY_S)
                    continue
            await connection.execute(DELETE_SCHEDULED, payment_id, action)
            done += 1
    return done


async def sweep(pool: asyncpg.Pool) -> int:
    """Announces what happened without a scheduled row (producers/api/announce.py): requests-to-pay
    whose time passed, accounts the ledger opened; each batch in its own transaction. How many."""
    done = 0
    async with pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection:
        for step in (expire_due_requests, announce_opened_accounts):
            async with connection.transaction():
                done += await step(connection)
    return done


async def run_scheduler(pool: asyncpg.Pool, publish: Publish, *, stop: asyncio.Event) -> None:
    """Does due work every POLL_INTERVAL_S until `stop` is set. A database outage is logged and
    waited out: the rows stay, and are done once PostgreSQL answers again."""
    while not stop.is_set():
        try:
            await run_due(pool, publish)
            await sweep(pool)
        except DB_UNAVAILABLE as error:
            log.warning("scheduler: PostgreSQL did not answer (%s); trying again", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL_S)


def due_after(start: datetime, seconds: float) -> datetime:
    """`start` plus `seconds`."""
    return start + timedelta(seconds=seconds)
