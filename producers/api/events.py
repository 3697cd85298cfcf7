"""Webhook events and their delivery log through the API (issue 10, items 3 and 5): reads, resends, replays.

The views consumer and the API record the events with their first deliveries
(infra/webhook_events.py), the dispatcher the attempts (consumers/webhooks/, migrations 0029, 0030).
This module reads them, and queues new deliveries of events that exist: a resend (one event, to
its subscribed endpoints or one named endpoint) and a replay (an endpoint's events since a time,
at most REPLAY_EVENTS_MAX a call, oldest first). Both are ordinary pending deliveries with their
`origin` set, so the dispatcher treats them as any other and the `webhook-id` stays the event's id.
Always within one tenant: another tenant's event or endpoint is a 404, as if it did not exist.
A disabled endpoint is refused (409): its deliveries would wait unsent until it is enabled.
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
from schemas.api.events import (
    REPLAY_EVENTS_MAX,
    EventList,
    EventResend,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookReplay,
    WebhookReplayCreate,
)
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
    "d.id, d.event_id, ev.type AS event_type, d.endpoint_id, d.status, d.origin, d.next_attempt_at, d.created_at"
)
SELECT_EVENT_DELIVERIES: Final = f"""
SELECT {DELIVERY_COLUMNS} FROM api_webhook_deliveries AS d JOIN api_events AS ev ON ev.id = d.event_id
WHERE d.event_id = $1 AND d.tenant_id = $2 ORDER BY d.id DESC LIMIT $3
"""
SELECT_ENDPOINT_DELIVERIES: Final = f"""
SELECT {DELIVERY_COLUMNS} FROM api_webhook_deliveries AS d JOIN api_events AS ev ON ev.id = d.event_id
WHERE d.endpoint_id = $1 AND d.tenant_id = $2 ORDER BY d.id DESC LIMIT $3
"""
SELECT_DELIVERIES_BY_ID: Final = f"""
SELECT {DELIVERY_COLUMNS} FROM api_webhook_deliveries AS d JOIN api_events AS ev ON ev.id = d.event_id
WHERE d.id = ANY($1::bigint[]) ORDER BY d.id
"""
SELECT_EVENT_TYPE: Final = "SELECT type FROM api_events WHERE id = $1 AND tenant_id = $2"
# The endpoint a resend or replay goes to, locked so a concurrent disable waits for the insert.
LOCK_ENDPOINT: Final = """
SELECT id, status, events FROM api_webhook_endpoints WHERE id = $1 AND tenant_id = $2 FOR SHARE
"""
# $3 NULL: every enabled endpoint of the tenant subscribed to the event's type; else that endpoint.
INSERT_RESENDS: Final = """
INSERT INTO api_webhook_deliveries (event_id, endpoint_id, tenant_id, next_attempt_at, origin)
SELECT ev.id, e.id, e.tenant_id, now(), 'resend'
FROM api_events AS ev JOIN api_webhook_endpoints AS e ON e.tenant_id = ev.tenant_id
WHERE ev.id = $1 AND ev.tenant_id = $2 AND e.status = 'enabled'
  AND CASE WHEN $3::text IS NULL THEN ev.type = ANY(e.events) ELSE e.id = $3 END
ORDER BY e.id
RETURNING id
"""
SELECT_EVENT_CURSOR: Final = "SELECT created_at, id FROM api_events WHERE id = $1 AND tenant_id = $2"
# The events a replay backfills: of the endpoint's types, since $3, after the cursor ($4, $5), oldest first.
SELECT_REPLAY_EVENTS: Final = """
SELECT id FROM api_events
WHERE tenant_id = $1 AND type = ANY($2::text[]) AND created_at >= $3
  AND ($4::timestamptz IS NULL OR (created_at, id) > ($4::timestamptz, $5::text))
ORDER BY created_at, id
LIMIT $6
"""
INSERT_REPLAYS: Final = """
INSERT INTO api_webhook_deliveries (event_id, endpoint_id, tenant_id, next_attempt_at, origin)
SELECT event_id, $2, $3, now(), 'replay' FROM unnest($1::text[]) WITH ORDINALITY AS picked(event_id, n)
ORDER BY n
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
            origin=row["origin"],
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

    async def resend(self, *, tenant: Tenant, event_id: str, request: EventResend) -> WebhookDeliveryList:
        """Queues the event again (see the module's docstring); the new deliveries, `pending`."""
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as db, db.transaction():
                event_type = await db.fetchval(SELECT_EVENT_TYPE, event_id, tenant.id)
                if event_type is None:
                    raise event_not_found()
                if request.webhook_endpoint is not None:
                    await _usable_endpoint(db, tenant, request.webhook_endpoint, param="webhook_endpoint")
                ids = [
                    row["id"] for row in await db.fetch(INSERT_RESENDS, event_id, tenant.id, request.webhook_endpoint)
                ]
                if not ids:
                    raise no_subscribed_endpoint(event_type)
                rows = await db.fetch(SELECT_DELIVERIES_BY_ID, ids)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return WebhookDeliveryList(data=deliveries_from_rows(rows, []), has_more=False)

    async def replay(self, *, tenant: Tenant, endpoint_id: str, request: WebhookReplayCreate) -> WebhookReplay:
        """Queues the endpoint's events since `request.since` (at most REPLAY_EVENTS_MAX) as new deliveries."""
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as db, db.transaction():
                endpoint = await _usable_endpoint(db, tenant, endpoint_id, param="endpoint_id")
                after: tuple[object, object] = (None, None)
                if request.starting_after is not None:
                    cursor = await db.fetchrow(SELECT_EVENT_CURSOR, request.starting_after, tenant.id)
                    if cursor is None:
                        raise ApiError(
                            status=404,
                            code="not_found",
                            detail="you have no event with this id; pass the previous answer's `last_event`",
                            param="starting_after",
                        )
                    after = (cursor["created_at"], cursor["id"])
                rows = await db.fetch(
                    SELECT_REPLAY_EVENTS, tenant.id, endpoint["events"], request.since, *after, REPLAY_EVENTS_MAX + 1
                )
                page, has_more = split_page(rows, REPLAY_EVENTS_MAX)
                event_ids = [row["id"] for row in page]
                await db.execute(INSERT_REPLAYS, event_ids, endpoint_id, tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return WebhookReplay(
            webhook_endpoint=endpoint_id,
            since=request.since,
            deliveries_created=len(event_ids),
            last_event=event_ids[-1] if event_ids else None,
            has_more=has_more,
        )


def no_subscribed_endpoint(event_type: str) -> ApiError:
    """The 409 for a resend with nowhere to go."""
    return ApiError(
        status=409,
        code="no_webhook_endpoints",
        detail=f"none of your enabled webhook endpoints subscribes to {event_type}; subscribe one "
        "(POST /v1/webhook_endpoints/{id} with its events) or name one as `webhook_endpoint`",
    )


async def _usable_endpoint(db: asyncpg.Connection, tenant: Tenant, endpoint_id: str, *, param: str) -> asyncpg.Record:
    """The tenant's endpoint, locked; 404 when it has none, 409 when it is disabled."""
    row = await db.fetchrow(LOCK_ENDPOINT, endpoint_id, tenant.id)
    if row is None:
        raise ApiError(status=404, code="not_found", detail="you have no webhook endpoint with this id", param=param)
    if row["status"] != "enabled":
        raise ApiError(
            status=409,
            code="webhook_endpoint_disabled",
            detail="this webhook endpoint is disabled, so nothing is sent to it; enable it first "
            '(POST /v1/webhook_endpoints/{id} with {"disabled": false})',
            param=param,
        )
    return row
