"""The API's request-to-pay table (migration 0024): api_payment_requests, always within one tenant.

Every status change is one conditional UPDATE that names the status it leaves, so two concurrent
answers to one request cannot both win: the loser's UPDATE matches no row and the service reads
the row again to say why. Time is passed in (`now`), never read from the database's clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

REQUEST_COLUMNS: Final = "id, status, payee, payer, amount, reference, expires_at, payment_id, created_at, updated_at"

INSERT_REQUEST: Final = f"""
INSERT INTO api_payment_requests (id, tenant_id, payee, payer, magic_decline, amount, reference, status, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {REQUEST_COLUMNS}
"""
SELECT_REQUEST: Final = f"SELECT {REQUEST_COLUMNS} FROM api_payment_requests WHERE id = $1 AND tenant_id = $2"
# A pending request whose time has passed is written down as expired when it is next touched.
EXPIRE_REQUEST: Final = f"""
UPDATE api_payment_requests SET status = 'expired', updated_at = $3
WHERE id = $1 AND tenant_id = $2 AND status = 'pending' AND expires_at <= $3
RETURNING {REQUEST_COLUMNS}
"""
# An answer (approved or declined) only to a pending request still within its time.
ANSWER_REQUEST: Final = f"""
UPDATE api_payment_requests SET status = $3, updated_at = $4
WHERE id = $1 AND tenant_id = $2 AND status = 'pending' AND expires_at > $4
RETURNING {REQUEST_COLUMNS}
"""
RECORD_PAYMENT: Final = f"""
UPDATE api_payment_requests SET payment_id = $2, updated_at = $3
WHERE id = $1 AND status = 'approved' AND payment_id IS NULL
RETURNING {REQUEST_COLUMNS}
"""
# Takes back an approval whose payment could not be made (Kafka away, say): pending again.
UNDO_APPROVAL: Final = """
UPDATE api_payment_requests SET status = 'pending', updated_at = $2
WHERE id = $1 AND status = 'approved' AND payment_id IS NULL
"""


# An approval whose payment never came (the process died between the two): pending again.
RELEASE_CLAIM: Final = """
UPDATE api_payment_requests SET status = 'pending', updated_at = $3
WHERE id = $1 AND status = 'approved' AND payment_id IS NULL AND updated_at <= $2
"""


class PaymentRequestRows:
    """Reads and writes api_payment_requests on a pool (or connection) it does not own."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self._db = db

    async def insert(
        self,
        *,
        request_id: str,
        tenant_id: str,
        payee: str,
        payer: str | None,
        magic_decline: bool,
        amount: int,
        reference: str | None,
        status: str,
        expires_at: datetime,
    ) -> asyncpg.Record:
        """Stores a new request (`pending`, or `declined` for the magic payer)."""
        row = await self._db.fetchrow(
            INSERT_REQUEST,
            request_id,
            tenant_id,
            payee,
            payer,
            magic_decline,
            amount,
            reference,
            status,
            expires_at,
        )
        assert row is not None
        return row

    async def get(self, *, request_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's request as stored; None when the tenant has no such request."""
        return await self._db.fetchrow(SELECT_REQUEST, request_id, tenant_id)

    async def expire(self, *, request_id: str, tenant_id: str, now: datetime) -> asyncpg.Record | None:
        """Writes `expired` on a pending request whose time has passed; None when it is not one."""
        return await self._db.fetchrow(EXPIRE_REQUEST, request_id, tenant_id, now)

    async def answer(self, *, request_id: str, tenant_id: str, status: str, now: datetime) -> asyncpg.Record | None:
        """Moves a pending, unexpired request to `status`; None (nothing written) otherwise."""
        return await self._db.fetchrow(ANSWER_REQUEST, request_id, tenant_id, status, now)

    async def record_payment(self, *, request_id: str, payment_id: str, now: datetime) -> asyncpg.Record | None:
        """Names the payment an approval made."""
        return await self._db.fetchrow(RECORD_PAYMENT, request_id, payment_id, now)

    async def release_claim(self, *, request_id: str, claimed_before: datetime, now: datetime) -> None:
        """Makes an approval claimed before `claimed_before` and still without a payment pending again."""
        await self._db.execute(RELEASE_CLAIM, request_id, claimed_before, now)

    async def undo_approval(self, *, request_id: str, now: datetime) -> None:
        """Makes an approved request without a payment pending again."""
        await self._db.execute(UNDO_APPROVAL, request_id, now)
