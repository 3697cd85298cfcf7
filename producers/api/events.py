"""Webhook events and their delivery log through the API (issue 10, items 3 and 5): read-only.

The views consumer writes the events and their deliveries, the dispatcher the attempts
(consumers/webhooks/, migration 0029); this module only reads them, always within one tenant:
another tenant's event or endpoint is a 404, as if it did not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final

import asyncpg

from producers.api.listings import decode_cursor, encode_cursor, split_page
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.api.events import EventList, WebhookAttempt, WebhookDelivery, WebhookDeliveryList
from schemas.webhooks import WebhookEvent

DELIVERIES_MAX: Final = 100  # per answer: an event has one per endpoint (at most 16), an endpoint many

EVENT_COLUMNS: Final = "id, type, data::text AS data, created_at"
SELECT_EVENT: Final = f"SELECT {EVENT_COLUMNS} FROM api_events WHERE id = $1 AND tenant_id = $2"
SELECT_EVENTS_PAGE: Final = f"""
SELECT {EVENT_COLUMNS} FROM api_events
WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
  AND ($4::text IS NULL OR type = $4)
ORDER BY created_at DESC, id DESC
LIMIT $5
"""
SELECT_ENDPOINT: Final = "SELECT id FROM api_webhook_endpoints WHERE id = $1 AND tenant_id = $2"
DELIVERY_COLUMNS: Final = (
    "d.id, d.event_id, ev.type AS event_type, d.endpoint_id, d.status, d.next_attempt_at, d.created_at"
)
SELECT_EVENT_DELIVERIES: Final = f"""
SELECT {DELIVERY_COLUMNS} FROM api_webhook_deliveries AS d JOIN api_events AS ev ON ev.id = d.event_id
WHERE d.event_id = $1 AND d.tenant_id = $2 ORDER BY d.id DESC LIMIT $3
"""
SELECT_ENDPOINT_DELIVERIES: Final = f"""
SELECT {DELIVERY_COLUMNS} FROM api_webhook_deliveries AS d JOIN api_events AS ev ON ev.id = d.event_id
WHERE d.endpoint_id = $1 AND d.tenant_id = $2 ORDER BY d.id DESC LIMIT $3
"""
SELECT_ATTEMPTS: Final = """
SELECT delivery_id, attempt, response_status, error, latency_ms, response_head, attempted_at
FROM api_webhook_attempts WHERE delivery_id = ANY($1::bigint[]) ORDER BY delivery_id, attempt
"""


def event_not_found() -> ApiError:
    """The 404 for an event id the tenant does not have (another tenant's included)."""
    return ApiError(status=404, code="not_found", detail="you have no event with this id", param="event_id")


def endpoint_not_found() -> ApiError:
    """The 404 for an endpoint id the tenant does not have."""
    return ApiError(
        status=404, code="not_found", detail="you have no webhook endpoint with this id", param="endpoint_id"
    )


def event_from_row(row: asyncpg.Record) -> WebhookEvent:
    """The event as its deliveries carry it."""
    return WebhookEvent(id=row["id"], type=row["type"], created_at=row["created_at"], data=json.loads(row["data"]))


def deliveries_from_rows(rows: Sequence[asyncpg.Record], attempts: Sequence[asyncpg.Record]) -> list[WebhookDelivery]:
    """Deliveries with their attempts, in the order of `rows`."""
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for attempt in attempts:
        fields = {name: attempt[name] for name in WebhookAttempt.model_fields}
        by_delivery.setdefault(attempt["delivery_id"], []).append(WebhookAttempt(**fields))
    return [
        WebhookDelivery(
            id=row["id"],
            event=row["event_id"],
            event_type=row["event_type"],
            webhook_endpoint=row["endpoint_id"],
            status=row["status"],
            next_attempt_at=row["next_attempt_at"],
            attempts=by_delivery.get(row["id"], []),
            created_at=row["created_at"],
        )
        for row in rows
    ]


class Events:
    """Reads a tenant's events and the delivery log."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, *, tenant: Tenant, event_id: str) -> WebhookEvent:
        """The tenant's event; 404 for any other id."""
        try:
            row = await self._pool.fetchrow(SELECT_EVENT, event_id, tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise event_not_found()
        return event_from_row(row)

    async def list(self, *, tenant: Tenant, limit: int, starting_after: str | None, type: str | None) -> EventList:
        """A page of the tenant's events, newest first, of one `type` if given."""
        at, last_id = decode_cursor("events", starting_after) if starting_after is not None else (None, None)
        try:
            rows = await self._pool.fetch(SELECT_EVENTS_PAGE, tenant.id, at, last_id, type, limit + 1)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        page, has_more = split_page(rows, limit)
        cursor = encode_cursor("events", page[-1]["created_at"], page[-1]["id"]) if has_more else None
        return EventList(data=[event_from_row(row) for row in page], has_more=has_more, next_cursor=cursor)

    async def event_deliveries(self, *, tenant: Tenant, event_id: str) -> WebhookDeliveryList:
        """The event's deliveries, one per endpoint it was sent to, with every attempt."""
        return await self._deliveries(tenant, SELECT_EVENT, SELECT_EVENT_DELIVERIES, event_id, event_not_found)

    async def endpoint_deliveries(self, *, tenant: Tenant, endpoint_id: str) -> WebhookDeliveryList:
        """The endpoint's latest deliveries, newest first, with every attempt."""
        return await self._deliveries(
            tenant, SELECT_ENDPOINT, SELECT_ENDPOINT_DELIVERIES, endpoint_id, endpoint_not_found
        )

    async def _deliveries(
        self, tenant: Tenant, owner_sql: str, deliveries_sql: str, owner_id: str, missing: Callable[[], ApiError]
    ) -> WebhookDeliveryList:
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as db:
                if await db.fetchrow(owner_sql, owner_id, tenant.id) is None:
                    raise missing()
                rows = await db.fetch(deliveries_sql, owner_id, tenant.id, DELIVERIES_MAX + 1)
                page, has_more = split_page(rows, DELIVERIES_MAX)
                attempts = await db.fetch(SELECT_ATTEMPTS, [row["id"] for row in page])
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return WebhookDeliveryList(data=deliveries_from_rows(page, attempts), has_more=has_more)
