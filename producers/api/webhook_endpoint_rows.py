"""The API's webhook endpoint table (migration 0028): api_webhook_endpoints.

Every statement names the tenant, so another tenant's endpoint is never read, changed or deleted:
it is simply not found. Secrets arrive here sealed (infra/sealed_secrets.py) and are never selected
back: the API answers `secret_last4`; only the dispatcher reads the sealed columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from schemas.api.webhook_endpoints import ROTATION_OVERLAP_HOURS

# A previous secret past its expiry no longer signs: it is answered as null.
ENDPOINT_COLUMNS: Final = """id, url, events, status, secret_last4, created_at, updated_at,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at"""

# Creating locks the tenant's row (FOR NO KEY UPDATE: foreign-key checks of other tables still pass)
# so two concurrent creates count the endpoints one after the other and never exceed the bound.
LOCK_TENANT: Final = "SELECT id FROM api_tenants WHERE id = $1 FOR NO KEY UPDATE"
COUNT_ENDPOINTS: Final = "SELECT count(*) FROM api_webhook_endpoints WHERE tenant_id = $1"
INSERT_ENDPOINT: Final = f"""
INSERT INTO api_webhook_endpoints (id, tenant_id, url, events, secret_sealed, secret_last4)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {ENDPOINT_COLUMNS}
"""
SELECT_ENDPOINT: Final = f"SELECT {ENDPOINT_COLUMNS} FROM api_webhook_endpoints WHERE id = $1 AND tenant_id = $2"
SELECT_ENDPOINTS_PAGE: Final = f"""
SELECT {ENDPOINT_COLUMNS} FROM api_webhook_endpoints
WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""
# NULL leaves a column as it is.
UPDATE_ENDPOINT: Final = f"""
UPDATE api_webhook_endpoints
SET url = coalesce($3, url), events = coalesce($4, events), status = coalesce($5, status), updated_at = now()
WHERE id = $1 AND tenant_id = $2
RETURNING {ENDPOINT_COLUMNS}
"""
# The current secret becomes the previous one (whatever was previous before is dropped).
ROTATE_SECRET: Final = f"""
UPDATE api_webhook_endpoints
SET previous_secret_sealed = secret_sealed,
    previous_secret_expires_at = now() + interval '{ROTATION_OVERLAP_HOURS} hours',
    secret_sealed = $3, secret_last4 = $4, updated_at = now()
WHERE id = $1 AND tenant_id = $2
RETURNING {ENDPOINT_COLUMNS}
"""
DELETE_ENDPOINT: Final = "DELETE FROM api_webhook_endpoints WHERE id = $1 AND tenant_id = $2 RETURNING id"


class WebhookEndpointRows:
    """Reads and writes api_webhook_endpoints on a connection or pool it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def count_locked(self, *, tenant_id: str) -> int:
        """How many endpoints the tenant has, with its row locked until the transaction ends (call
        inside the transaction that inserts)."""
        await self._db.execute(LOCK_TENANT, tenant_id)
        count: int = await self._db.fetchval(COUNT_ENDPOINTS, tenant_id)
        return count

    async def insert(
        self, *, endpoint_id: str, tenant_id: str, url: str, events: list[str], secret_sealed: bytes, secret_last4: str
    ) -> asyncpg.Record:
        """Stores a new, enabled endpoint."""
        row = await self._db.fetchrow(INSERT_ENDPOINT, endpoint_id, tenant_id, url, events, secret_sealed, secret_last4)
        assert row is not None
        return row

    async def endpoint(self, *, endpoint_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's endpoint; None when the tenant has no such endpoint."""
        return await self._db.fetchrow(SELECT_ENDPOINT, endpoint_id, tenant_id)

    async def page(self, *, tenant_id: str, after: tuple[datetime, str] | None, rows_max: int) -> list[asyncpg.Record]:
        """Up to `rows_max` of the tenant's endpoints, created before `after`, newest first."""
        at, last_id = after if after is not None else (None, None)
        return list(await self._db.fetch(SELECT_ENDPOINTS_PAGE, tenant_id, at, last_id, rows_max))

    async def update(
        self, *, endpoint_id: str, tenant_id: str, url: str | None, events: list[str] | None, status: str | None
    ) -> asyncpg.Record | None:
        """Sets what is not None; the endpoint as it is now, or None when the tenant has no such endpoint."""
        return await self._db.fetchrow(UPDATE_ENDPOINT, endpoint_id, tenant_id, url, events, status)

    async def rotate(
        self, *, endpoint_id: str, tenant_id: str, secret_sealed: bytes, secret_last4: str
    ) -> asyncpg.Record | None:
        """Makes the new secret current and the current one previous for ROTATION_OVERLAP_HOURS."""
        return await self._db.fetchrow(ROTATE_SECRET, endpoint_id, tenant_id, secret_sealed, secret_last4)

    async def delete(self, *, endpoint_id: str, tenant_id: str) -> bool:
        """Deletes the tenant's endpoint; False when it has no such endpoint."""
        return await self._db.fetchval(DELETE_ENDPOINT, endpoint_id, tenant_id) is not None
