"""The api_qr_codes table (migration 0025): the QR codes a tenant's merchants had made, kept so
GET /v1/qr_codes/{id} and its PNG can be served again, always within one tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

QR_CODE_COLUMNS: Final = "id, type, merchant, amount, reference, bill_number, payload, expires_at, created_at"
# The merchant a code is made for, with what the payload needs (tag 52 from its category, tag 60
# from its district). `magic`: the sandbox's own accounts for magic values (migration 0026).
SELECT_TENANT_MERCHANT: Final = """
SELECT id, kind, district, category, magic FROM api_accounts WHERE id = $1 AND tenant_id = $2
"""
INSERT_QR_CODE: Final = f"""
INSERT INTO api_qr_codes (id, tenant_id, merchant, type, amount, reference, bill_number, payload, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {QR_CODE_COLUMNS}
"""
SELECT_QR_CODE: Final = f"SELECT {QR_CODE_COLUMNS} FROM api_qr_codes WHERE id = $1 AND tenant_id = $2"


class QrCodeRows:
    """Reads and writes api_qr_codes on a connection (or pool) it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def merchant(self, *, account_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's account (`id`, `kind`, `district`, `category`, `magic`); None when it has none such."""
        return await self._db.fetchrow(SELECT_TENANT_MERCHANT, account_id, tenant_id)

    async def insert(
        self,
        *,
        qr_code_id: str,
        tenant_id: str,
        merchant: str,
        type: str,
        amount: int | None,
        reference: str | None,
        bill_number: str | None,
        payload: str,
        expires_at: datetime | None,
    ) -> asyncpg.Record:
        """Stores a new code."""
        row = await self._db.fetchrow(
            INSERT_QR_CODE, qr_code_id, tenant_id, merchant, type, amount, reference, bill_number, payload, expires_at
        )
        assert row is not None
        return row

    async def qr_code(self, *, qr_code_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's code; None when the tenant has no such code."""
        return await self._db.fetchrow(SELECT_QR_CODE, qr_code_id, tenant_id)
