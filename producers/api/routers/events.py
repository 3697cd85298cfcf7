"""`/v1/events`: your webhook events, where each was delivered, and resending one;
`/v1/webhook_endpoints/{id}/deliveries`: one endpoint's delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from producers.api.deps import EventsDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from producers.api.routers.listings import CursorQuery, LimitQuery
from schemas.api.events import EventList, EventResend, WebhookDeliveryList
from schemas.api.listings import LIMIT_DEFAULT
from schemas.webhooks import WebhookEvent, WebhookEventType

router = APIRouter(tags=["events"], route_class=IdempotentRoute)  # POSTs take an Idempotency-Key
TypeQuery = Annotated[WebhookEventType | None, Query(description="Only events of this type.")]


@router.get("/v1/events", responses=problem_responses(401, 422, 503), summary="List your events")
async def list_events(
    tenant: TenantDep,
    service: EventsDep,
    limit: LimitQuery = LIMIT_DEFAULT,
    starting_after: CursorQuery = None,
    type: TypeQuery = None,
) -> EventList:
    """Your events, newest first, `limit` at a time: what was (or will be) POSTed to your endpoints."""
    return await service.list(tenant=tenant, limit=limit, starting_after=starting_after, type=type)


@router.get("/v1/events/{event_id}", responses=problem_responses(401, 404, 503), summary="Read an event")
async def get_event(event_id: str, tenant: TenantDep, service: EventsDep) -> WebhookEvent:
    """One event, exactly as its deliveries carry it (`data` is the object as it was then)."""
    return await service.get(tenant=tenant, event_id=event_id)


@router.get(
    "/v1/events/{event_id}/deliveries",
    responses=problem_responses(401, 404, 503),
    summary="An event's deliveries",
)
async def event_deliveries(event_id: str, tenant: TenantDep, service: EventsDep) -> WebhookDeliveryList:
    """The event's delivery to each subscribed endpoint: status, next attempt, and every attempt made
    (`response_status` or `error`, `latency_ms`, the answer's first bytes)."""
    return await service.event_deliveries(tenant=tenant, event_id=event_id)


@router.get(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries",
    responses=problem_responses(401, 404, 503),
    summary="A webhook endpoint's deliveries",
    tags=["webhook endpoints"],
)
async def endpoint_deliveries(endpoint_id: str, tenant: TenantDep, service: EventsDep) -> WebhookDeliveryList:
    """The endpoint's latest deliveries, newest first (at most 100), each with every attempt made."""
    return await service.endpoint_deliveries(tenant=tenant, endpoint_id=endpoint_id)


@router.post(
    "/v1/events/{event_id}/resend",
    status_code=202,
    responses=problem_responses(401, 404, 409, 413, 422, 503),
    summary="Resend an event",
)
async def resend_event(
    event_id: str,
    tenant: TenantDep,
    service: EventsDep,
    body: Annotated[EventResend | None, Body()] = None,
) -> WebhookDeliveryList:
    """Queues the event again as new deliveries (`origin: resend`): to `webhook_endpoint` if given,
    else to every enabled endpoint subscribed to its type (409 when there is none). The `webhook-id`
    is the event's id, as on its first delivery; answers the new deliveries, `pending`."""
    return await service.resend(tenant=tenant, event_id=event_id, request=body or EventResend())
