"""Webhook endpoints through the API (issue 10, item 1): where a tenant's events go, and their secrets.

Creating stores the endpoint `enabled` with a fresh Standard Webhooks secret (`whsec_` + base64 of
SECRET_BYTES random bytes) and answers it — the one time besides `rotate_secret` that the secret is
shown in full. The secret is stored sealed with the deployment key (infra/sealed_secrets.py; why it
is stored at all, and who can read it, is said there and in migration 0028), never hashed, since
the dispatcher must sign with it; it is never logged: no log call here or in the rows module names it.
One copy is not sealed: a create or rotate sent with an Idempotency-Key keeps its answer, secret
included, in api_idempotency for 24 h (producers/api/idempotency.py), so a retry gets the same secret.

Rotating makes a new secret current and keeps the old one signing beside it for
ROTATION_OVERLAP_HOURS (both signatures in `webhook-signature`), so a receiver can switch secrets
without losing a delivery.

A tenant has at most ENDPOINTS_PER_TENANT_MAX endpoints (as Stripe's accounts do): the dispatcher
fans each event out to every subscribed endpoint, and this bounds that fan-out. The URL's
reachability is not checked here (schemas/api/webhook_endpoints.py says why).
"""

from __future__ import annotations

import secrets
from typing import Final

import asyncpg

from infra.sealed_secrets import seal
from producers.api.listings import decode_cursor, encode_cursor, split_page
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from producers.api.webhook_endpoint_rows import WebhookEndpointRows
from schemas.api.webhook_endpoints import (
    SECRET_SHOWN_CHARS,
    WEBHOOK_ENDPOINT_ID_PREFIX,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from schemas.webhooks import SECRET_BYTES, format_secret

ENDPOINT_ID_RANDOM_BYTES: Final = 16
ENDPOINTS_PER_TENANT_MAX: Final = 16


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and SECRET_BYTES random bytes in base64."""
    return format_secret(secrets.token_bytes(SECRET_BYTES))


def not_found() -> ApiError:
    """The 404 for an endpoint id the tenant does not have (another tenant's included)."""
    return ApiError(
        status=404, code="not_found", detail="you have no webhook endpoint with this id", param="endpoint_id"
    )


def endpoint_from_row(row: asyncpg.Record) -> WebhookEndpoint:
    """The API's view of a stored endpoint (without its secret)."""
    return WebhookEndpoint(
        id=row["id"],
        url=row["url"],
        events=row["events"],
        status=row["status"],
        secret_last4=row["secret_last4"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def with_secret(row: asyncpg.Record, secret: str) -> WebhookEndpointWithSecret:
    """The endpoint and its new secret in full (create and rotate_secret only)."""
    return WebhookEndpointWithSecret(**endpoint_from_row(row).model_dump(), secret=secret)


class WebhookEndpoints:
    """A tenant's webhook endpoints: create, read, list, update, delete, rotate the secret."""

    def __init__(self, *, pool: asyncpg.Pool, key: bytes) -> None:
        self._pool = pool
        self._key = key  # the deployment key: secrets are sealed with it before they are stored

    async def create(self, *, tenant: Tenant, request: WebhookEndpointCreate) -> WebhookEndpointWithSecret:
        """Stores an enabled endpoint with a new secret; 409 when the tenant has ENDPOINTS_PER_TENANT_MAX."""
        endpoint_id = WEBHOOK_ENDPOINT_ID_PREFIX + secrets.token_hex(ENDPOINT_ID_RANDOM_BYTES)
        secret = new_secret()
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
                rows = WebhookEndpointRows(connection)
                if await rows.count_locked(tenant_id=tenant.id) >= ENDPOINTS_PER_TENANT_MAX:
                    raise ApiError(
                        status=409,
                        code="webhook_endpoints_limit",
                        detail=f"you have {ENDPOINTS_PER_TENANT_MAX} webhook endpoints, the most a tenant may have; "
                        "delete one you no longer use, or subscribe an existing one to more events",
                    )
                row = await rows.insert(
                    endpoint_id=endpoint_id,
                    tenant_id=tenant.id,
                    url=request.url,
                    events=list(request.events),
                    secret_sealed=seal(self._key, secret, bound_to=endpoint_id),
                    secret_last4=secret[-SECRET_SHOWN_CHARS:],
                )
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return with_secret(row, secret)

    async def get(self, *, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
        """The tenant's endpoint; 404 for any other id."""
        try:
            row = await WebhookEndpointRows(self._pool).endpoint(endpoint_id=endpoint_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise not_found()
        return endpoint_from_row(row)

    async def list(self, *, tenant: Tenant, limit: int, starting_after: str | None) -> WebhookEndpointList:
        """A page of the tenant's endpoints, newest first (cursors as producers/api/listings.py makes them)."""
        after = decode_cursor("webhook_endpoints", starting_after) if starting_after is not None else None
        try:
            rows = await WebhookEndpointRows(self._pool).page(tenant_id=tenant.id, after=after, rows_max=limit + 1)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        page, has_more = split_page(rows, limit)
        return WebhookEndpointList(
            data=[endpoint_from_row(row) for row in page],
            has_more=has_more,
            next_cursor=encode_cursor("webhook_endpoints", page[-1]["created_at"], page[-1]["id"])
            if has_more
            else None,
        )

    async def update(self, *, tenant: Tenant, endpoint_id: str, request: WebhookEndpointUpdate) -> WebhookEndpoint:
        """Changes the URL, the events or the status (`disabled`); what is not given stays."""
        status = None if request.disabled is None else ("disabled" if request.disabled else "enabled")
        events: list[str] | None = None if request.events is None else list(request.events)
        try:
            row = await WebhookEndpointRows(self._pool).update(
                endpoint_id=endpoint_id, tenant_id=tenant.id, url=request.url, events=events, status=status
            )
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise not_found()
        return endpoint_from_row(row)

    async def rotate_secret(self, *, tenant: Tenant, endpoint_id: str) -> WebhookEndpointWithSecret:
        """A new current secret; the old one keeps signing beside it for ROTATION_OVERLAP_HOURS."""
        secret = new_secret()
        try:
            row = await WebhookEndpointRows(self._pool).rotate(
                endpoint_id=endpoint_id,
                tenant_id=tenant.id,
                secret_sealed=seal(self._key, secret, bound_to=endpoint_id),
                secret_last4=secret[-SECRET_SHOWN_CHARS:],
            )
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise not_found()
        return with_secret(row, secret)

    async def delete(self, *, tenant: Tenant, endpoint_id: str) -> WebhookEndpointDeleted:
        """Deletes the endpoint with its secrets: nothing more is delivered to it."""
        try:
            deleted = await WebhookEndpointRows(self._pool).delete(endpoint_id=endpoint_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if not deleted:
            raise not_found()
        return WebhookEndpointDeleted(id=endpoint_id)
