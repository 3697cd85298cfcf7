"""The webhook tables' SQL (migrations 0029, 0030): api_events, api_webhook_deliveries, api_webhook_attempts.

Two writers, each on a connection it does not own:
- the views consumer, inside the transaction that applies a batch of status changes
  (consumers/views/store.py): `events_of` each change, all recorded at the end of the batch by
  infra/webhook_events.record_events; the changes, their events, their deliveries and the outcome
  offsets commit together, or none of them does;
- `DeliveryStore`, the dispatcher's: it claims due deliveries (FOR UPDATE SKIP LOCKED, then a lease
  so a crashed dispatcher's claims fall due again), and records each attempt with its decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
from pydantic_core import to_json

from consumers.webhooks.events import EventSpec, ObjectKind, events_for, object_data
from consumers.webhooks.retries import Decision
from infra.webhook_events import NewEvent

SELECT_OBJECT: Final[dict[ObjectKind, str]] = {
    "payment": """SELECT id, tenant_id, status, payer, payee, amount, amount_captured, amount_refunded, kind,
                  capture_method, expires_at, failure_code, failure_message, created_at, updated_at
                  FROM api_payments WHERE id = $1""",
    "refund": """SELECT id, tenant_id, status, payment_id, amount, reason, failure_code, failure_message,
                 created_at, updated_at FROM api_refunds WHERE id = $1""",
    "top_up": """SELECT id, tenant_id, status, account, amount, failure_code, failure_message, created_at,
                 updated_at FROM api_top_ups WHERE id = $1""",
}

# Due deliveries of enabled endpoints, at most `$3 - in flight` per endpoint ($1/$2: the dispatcher's
# in-flight count per endpoint), `$4` in all, oldest due first. Each endpoint's first few due rows come
# from the index of migration 0036 (a LATERAL probe per enabled endpoint), so one endpoint's backlog
# never fills the batch and a claim costs the same with 10 or 10,000 rows waiting; SKIP LOCKED lets
# several dispatchers share the table (rows locked but not returned are released at commit).
CLAIM_DUE: Final = """
WITH busy AS (SELECT * FROM unnest($1::text[], $2::int[]) AS b(endpoint_id, in_flight))
SELECT picked.id, picked.next_attempt_at
FROM api_webhook_endpoints AS e
LEFT JOIN busy AS b ON b.endpoint_id = e.id
CROSS JOIN LATERAL (
    SELECT d.id, d.next_attempt_at FROM api_webhook_deliveries AS d
    WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at, d.id
    LIMIT greatest($3::int - coalesce(b.in_flight, 0), 0)
    FOR UPDATE OF d SKIP LOCKED
) AS picked
WHERE e.status = 'enabled'
ORDER BY picked.next_attempt_at, picked.id
LIMIT $4
"""
# The claim, in one statement (one round trip, its own transaction): CLAIM_DUE's rows are leased — the
# attempt counted now, the row due again only when the lease lapses — and returned with their event and endpoint,
# and how long each had been due (`waited_s`: what tells a backlog that one process drains at once from one that
# it does not, consumers/webhooks/workers.py).
CLAIM: Final = (
    "WITH picked AS ("
    + CLAIM_DUE
    + """)
UPDATE api_webhook_deliveries AS d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $5), updated_at = now()
FROM picked, api_events AS ev, api_webhook_endpoints AS e
WHERE d.id = picked.id AND ev.id = d.event_id AND e.id = d.endpoint_id
RETURNING d.id, d.attempts, d.endpoint_id, ev.id AS event_id, ev.type, ev.data::text AS data, ev.created_at,
          now() AS claimed_at, extract(epoch FROM now() - picked.next_attempt_at)::float8 AS waited_s,
          e.url, e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at
"""
)
# A batch of finished attempts (the dispatcher's Recorder) in one statement, from one JSON array: the
# attempts, their deliveries' new status and next attempt, and the endpoints that answered 410 Gone. One
# parameter to encode (an array per column cost ~10 µs a row in asyncpg's encoders) and one round trip: a
# statement is its own transaction, so no BEGIN and COMMIT either.
FINISH: Final = """
WITH done AS MATERIALIZED (
    SELECT * FROM json_to_recordset($1::json) AS x (
        delivery_id bigint, endpoint_id text, attempt int, response_status int, error text, latency_ms int,
        response_head text, status text, next_attempt_at timestamptz, disable boolean)
), attempts AS (
    INSERT INTO api_webhook_attempts (delivery_id, attempt, response_status, error, latency_ms, response_head)
    SELECT delivery_id, attempt, response_status, error, latency_ms, response_head FROM done
), deliveries AS (
    UPDATE api_webhook_deliveries AS d
    SET status = done.status, next_attempt_at = done.next_attempt_at, updated_at = now()
    FROM done WHERE d.id = done.delivery_id
)
UPDATE api_webhook_endpoints SET status = 'disabled', updated_at = now()
WHERE id IN (SELECT endpoint_id FROM done WHERE disable) AND status = 'enabled'
"""


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt as it ended, with what retries.py decided."""

    delivery_id: int
    endpoint_id: str
    attempt: int
    response_status: int | None
    error: str | None
    latency_ms: int
    response_head: str
    decision: Decision


async def _object(db: asyncpg.Connection, kind: ObjectKind, object_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(SELECT_OBJECT[kind], object_id)


async def events_of(db: asyncpg.Connection, *, kind: ObjectKind, object_id: str) -> list[NewEvent]:
    """The events the object's status change announces, each with its object as it stands now (call inside
    the transaction that changed it, after the change); infra/webhook_events.record_events records them."""
    row = await _object(db, kind, object_id)
    if row is None:
        return []
    specs = events_for(
        kind=kind, object_id=object_id, status=row["status"], payment_id=row["payment_id"] if kind == "refund" else None
    )
    return [await _event(db, spec, row if spec.object_kind == kind else None) for spec in specs]


async def _event(db: asyncpg.Connection, spec: EventSpec, row: asyncpg.Record | None) -> NewEvent:
    row = row if row is not None else await _object(db, spec.object_kind, spec.object_id)
    assert row is not None, f"{spec.object_kind} {spec.object_id} vanished inside its own transaction"
    return NewEvent(row["tenant_id"], spec.type, spec.object_id, object_data(spec.object_kind, dict(row)))


class DeliveryStore:
    """The dispatcher's reads and writes, over a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(
        self, *, in_flight: dict[str, int], per_endpoint_max: int, batch_max: int, lease_s: float
    ) -> list[dict[str, Any]]:
        """Claims due deliveries (see CLAIM_DUE) for `lease_s` seconds; each with its event and endpoint."""
        if batch_max <= 0:
            return []
        endpoints = sorted(in_flight)
        async with self._pool.acquire() as db:
            rows = await db.fetch(
                CLAIM, endpoints, [in_flight[e] for e in endpoints], per_endpoint_max, batch_max, lease_s
            )
        return [dict(row) for row in rows]

    async def finish_many(self, attempts: Sequence[Finished]) -> None:
        """Records finished attempts and their decisions in one statement, so in one transaction (each
        delivery at most once: a delivery has one attempt in flight, its lease)."""
        rows = [
            {
                "delivery_id": a.delivery_id,
                "endpoint_id": a.endpoint_id,
                "attempt": a.attempt,
                "response_status": a.response_status,
                "error": a.error,
                "latency_ms": a.latency_ms,
                "response_head": a.response_head,
                "status": a.decision.status,
                "next_attempt_at": None
                if a.decision.next_attempt_at is None
                else a.decision.next_attempt_at.isoformat(),
                "disable": a.decision.disable_endpoint,
            }
            for a in attempts
        ]
        async with self._pool.acquire() as db:
            await db.execute(FINISH, to_json(rows).decode())  # pydantic-core's encoder: C, not json.dumps


def previous_secret_valid(expires_at: datetime | None, now: datetime) -> bool:
    """Whether an endpoint's previous secret still signs (until it expires)."""
    return expires_at is not None and expires_at > now


def sealed_secrets(row: dict[str, Any], now: datetime) -> Sequence[bytes]:
    """The sealed secrets to sign a delivery with: the current one, then the previous one while valid."""
    sealed = [row["secret_sealed"]]
    if row["previous_secret_sealed"] is not None and previous_secret_valid(row["previous_secret_expires_at"], now):
        sealed.append(row["previous_secret_sealed"])
    return sealed
