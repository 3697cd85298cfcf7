"""The one writer of webhook events (api_events, migrations 0029 and 0030) and their first deliveries.

Two kinds of process record events, each inside the transaction that made the change an event
announces: the views consumer (consumers/webhooks/store.py, for what the ledger decided) and the API
(producers/api: payment requests, accounts that opened, payments its scheduler timed out). Both call
`record_event`, so the SQL lives here, below both.

An event is recorded at most once per (object, type) for the types in ONCE_PER_OBJECT — a unique
index of migration 0030 says so, and `record_event` answers None, recording no delivery, for a
second one: an expiry observed by a read and by the scheduler's sweep at the same moment announces
itself once. Other types can truly repeat (`payment.requires_capture` after a refused capture,
`payment.refunded` per refund), so they are guarded by the status change itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

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

# The event and one delivery per enabled endpoint of the tenant subscribed to its type, due now, in one
# statement (one round trip). DO NOTHING inserts no event — so no delivery either, and the answer is NULL —
# when api_events_once_per_object already holds (object, type).
INSERT_EVENT: Final = """
WITH event AS (
    INSERT INTO api_events (id, tenant_id, type, object_id, data) VALUES ($1, $2, $3, $4, $5::jsonb)
    ON CONFLICT DO NOTHING
    RETURNING id, tenant_id, type
), deliveries AS (
    INSERT INTO api_webhook_deliveries (event_id, endpoint_id, tenant_id, next_attempt_at)
    SELECT event.id, e.id, e.tenant_id, now()
    FROM event JOIN api_webhook_endpoints AS e
      ON e.tenant_id = event.tenant_id AND e.status = 'enabled' AND event.type = ANY(e.events)
)
SELECT id FROM event
"""


def new_event_id() -> str:
    """A fresh `evt_` + 32 hex digits."""
    return EVENT_ID_PREFIX + secrets.token_hex(EVENT_ID_RANDOM_BYTES)


def event_json(data: Mapping[str, Any]) -> str:
    """`data` as stored and sent: compact JSON."""
    return json.dumps(data, separators=(",", ":"))


async def record_event(
    db: asyncpg.Connection, *, tenant_id: str, type: WebhookEventType, object_id: str, data: Mapping[str, Any]
) -> str | None:
    """Records one event about `object_id` and its deliveries; its id, or None when an event of a
    ONCE_PER_OBJECT type was recorded for the object already. Call inside the change's transaction."""
    event_id: str | None = await db.fetchval(INSERT_EVENT, new_event_id(), tenant_id, type, object_id, event_json(data))
    return event_id
