"""`/v1/webhook_endpoints`: create, list, read, update (URL, events, disabled), delete, rotate the secret,
replay the events since a time."""

from __future__ import annotations

from fastapi import APIRouter

from producers.api.deps import EventsDep, TenantDep, WebhookEndpointsDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from producers.api.routers.listings import CursorQuery, LimitQuery
from schemas.api.events import WebhookReplay, WebhookReplayCreate
from schemas.api.listings import LIMIT_DEFAULT
from schemas.api.webhook_endpoints import (
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhook endpoints"], route_class=IdempotentRoute)


@router.post(
    "", status_code=201, responses=problem_responses(401, 409, 413, 422, 503), summary="Create a webhook endpoint"
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, tenant: TenantDep, endpoints: WebhookEndpointsDep
) -> WebhookEndpointWithSecret:
    """Subscribes a URL to event types. Answers the signing `secret` (`whsec_…`) — shown in full only
    here and by `rotate_secret`. The URL is not called now: a receiver that is down or unreachable
    shows up as failed deliveries, not as an error here."""
    return await endpoints.create(tenant=tenant, request=body)


@router.get("", responses=problem_responses(401, 422, 503), summary="List your webhook endpoints")
async def list_webhook_endpoints(
    tenant: TenantDep,
    endpoints: WebhookEndpointsDep,
    limit: LimitQuery = LIMIT_DEFAULT,
    starting_after: CursorQuery = None,
) -> WebhookEndpointList:
    """Your webhook endpoints, newest first, `limit` at a time (secrets shown as `secret_last4`)."""
    return await endpoints.list(tenant=tenant, limit=limit, starting_after=starting_after)


@router.get("/{endpoint_id}", responses=problem_responses(401, 404, 503), summary="Read a webhook endpoint")
async def get_webhook_endpoint(endpoint_id: str, tenant: TenantDep, endpoints: WebhookEndpointsDep) -> WebhookEndpoint:
    """One of your webhook endpoints (its secret shown as `secret_last4`)."""
    return await endpoints.get(tenant=tenant, endpoint_id=endpoint_id)


@router.post(
    "/{endpoint_id}", responses=problem_responses(401, 404, 413, 422, 503), summary="Update a webhook endpoint"
)
async def update_webhook_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, tenant: TenantDep, endpoints: WebhookEndpointsDep
) -> WebhookEndpoint:
    """Changes its `url`, its `events`, or stops (`"disabled": true`) and resumes (`false`) deliveries."""
    return await endpoints.update(tenant=tenant, endpoint_id=endpoint_id, request=body)


@router.delete("/{endpoint_id}", responses=problem_responses(401, 404, 503), summary="Delete a webhook endpoint")
async def delete_webhook_endpoint(
    endpoint_id: str, tenant: TenantDep, endpoints: WebhookEndpointsDep
) -> WebhookEndpointDeleted:
    """Deletes the endpoint and its secrets; nothing more is delivered to it."""
    return await endpoints.delete(tenant=tenant, endpoint_id=endpoint_id)


@router.post(
    "/{endpoint_id}/rotate_secret",
    responses=problem_responses(401, 404, 503),
    summary="Rotate a webhook endpoint's secret",
)
async def rotate_webhook_endpoint_secret(
    endpoint_id: str, tenant: TenantDep, endpoints: WebhookEndpointsDep
) -> WebhookEndpointWithSecret:
    """Answers a new signing `secret` in full (the only time it is shown). The previous secret keeps
    signing every delivery beside the new one for 24 hours (`previous_secret_expires_at`), so switch
    your receiver over within that window."""
    return await endpoints.rotate_secret(tenant=tenant, endpoint_id=endpoint_id)


@router.post(
    "/{endpoint_id}/replay",
    status_code=202,
    responses=problem_responses(401, 404, 409, 413, 422, 503),
    summary="Replay a webhook endpoint's events since a time",
)
async def replay_webhook_endpoint(
    endpoint_id: str, body: WebhookReplayCreate, tenant: TenantDep, events: EventsDep
) -> WebhookReplay:
    """Backfills after an outage: every event of the endpoint's types created at or after `since`,
    oldest first, as new deliveries (`origin: replay`, the same `webhook-id` as before), at most 500
    a call (REPLAY_EVENTS_MAX): `has_more` says to call again with `starting_after` = `last_event`."""
    return await events.replay(tenant=tenant, endpoint_id=endpoint_id, request=body)
