"""The one writer of webhook events (api_events, migrations 0029 and 0030) and their first deliveries.

Two kinds of process record events, each inside the transaction that made the change an event
announces: the views consumer (consumers/webhooks/store.py, for what the ledger decided) and the API
(producers/api: payment requests, accounts that opened, payments its scheduler timed out). Both call
`record_events` (the views consumer once per batch) or `record_event`, so the SQL lives here, below both.

An event is recorded at most once per (object, type) for the types in ONCE_PER_OBJECT — a unique
index of migration 0030 says so, and `record_event` answers None, recording no delivery, for a
second one: an expiry observed by a read and by the scheduler's sweep at the same moment announces
itself once. Other types can truly repeat (`payment.requires_capture` after a refused capture,
`payment.refunded` per refund), so they are guarded by the status change itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import asyncpg

from schemas.webhooks import EVENT_ID_PREFIX, WebhookEventType

EVENT_ID_RANDOM_BYTES: Final = 16

# Keep in step with the partial unique index api_events_once_per_object (migration 0030).
ONCE_PER_OBJECT: Final[frozenset[WebhookEventType]] = frozenset(
    {
        "payment.failed",
        "payment_request.created",
        "payment_request.approved",
        "payment_request.declined",
        "payment_request.expired",
        "account.opened",
    }
)

# Events and one delivery per enabled endpoint of their tenant subscribed to their type, due now, in one
# statement (one round trip, however many events: a views batch announces all of its changes at once). DO
# NOTHING inserts no event — so no delivery either, and its id is not returned — when
# api_events_once_per_object already holds (object, type), also from an earlier row of the same statement.
# Deliveries are numbered in the order the events were given, so the dispatcher sends them in that order.
INSERT_EVENTS: Final = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
        AS g(id, tenant_id, type, object_id, data, ord)
), event AS (
    INSERT INTO api_events (id, tenant_id, type, object_id, data)
    SELECT id, tenant_id, type, object_id, data::jsonb FROM given ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING id
), deliveries AS (
    INSERT INTO api_webhook_deliveries (event_id, endpoint_id, tenant_id, next_attempt_at)
    SELECT given.id, e.id, e.tenant_id, now()
    FROM event JOIN given ON given.id = event.id JOIN api_webhook_endpoints AS e
      ON e.tenant_id = given.tenant_id AND e.status = 'enabled' AND given.type = ANY(e.events)
    ORDER BY given.ord, e.id
)
SELECT id FROM event
"""
EVENTS_PER_STATEMENT_MAX: Final = 10_000  # a views batch (≤ 5,000 outcomes, at most 2 events each) fits in one


class NewEvent(NamedTuple):
    """An event to record: about `object_id` of `tenant_id`; `data` is the object as the API shows it."""

    tenant_id: str
    type: WebhookEventType
    object_id: str
    data: Mapping[str, Any]


def new_event_id() -> str:
    """A fresh `evt_` + 32 hex digits."""
    return EVENT_ID_PREFIX + secrets.token_hex(EVENT_ID_RANDOM_BYTES)


def event_json(data: Mapping[str, Any]) -> str:
    """`data` as stored and sent: compact JSON."""
    return json.dumps(data, separators=(",", ":"))


async def record_events(db: asyncpg.Connection, events: Sequence[NewEvent]) -> list[str | None]:
    """Records `events` and their deliveries, EVENTS_PER_STATEMENT_MAX per statement; for each, its id, or
    None when an event of a ONCE_PER_OBJECT type was recorded for the object already (earlier in `events`
    too). Call inside the transaction of the changes they announce."""
    recorded: list[str | None] = []
    for start in range(0, len(events), EVENTS_PER_STATEMENT_MAX):
        chunk = events[start : start + EVENTS_PER_STATEMENT_MAX]
        ids = [new_event_id() for _ in chunk]
        columns = ([e.tenant_id for e in chunk], [e.type for e in chunk], [e.object_id for e in chunk])
        rows = await db.fetch(INSERT_EVENTS, ids, *columns, [event_json(e.data) for e in chunk])
        inserted = {row["id"] for row in rows}
        recorded += [event_id if event_id in inserted else None for event_id in ids]
    return recorded


async def record_event(
    db: asyncpg.Connection, *, tenant_id: str, type: WebhookEventType, object_id: str, data: Mapping[str, Any]
) -> str | None:
    """Records one event about `object_id` and its deliveries (see `record_events`)."""
    return (await record_events(db, [NewEvent(tenant_id, type, object_id, data)]))[0]
