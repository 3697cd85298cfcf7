"""The API's refund table (migration 0024): api_refunds, and the refund reservation on api_payments.

A refund is stored in the same transaction that reserves its amount on the payment
(`amount_refund_reserved`), with the payment's row locked first (`lock_payment`, FOR UPDATE): a
second refund of the same payment waits for the first to commit and then sees its reservation, so
no interleaving can reserve more than was captured. The views consumer (consumers/views/store.py)
settles the reservation from the ledger's outcome; `undo` takes it back when Kafka never had the request.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

REFUND_COLUMNS: Final = "id, status, payment_id, amount, reason, failure_code, failure_message, created_at, updated_at"

LOCK_PAYMENT: Final = """
SELECT id, status, payer, payee, amount_captured, amount_refund_reserved, request_event_id
FROM api_payments WHERE id = $1 AND tenant_id = $2
FOR UPDATE
"""
RESERVE: Final = "UPDATE api_payments SET amount_refund_reserved = amount_refund_reserved + $2 WHERE id = $1"
INSERT_REFUND: Final = f"""
INSERT INTO api_refunds (id, tenant_id, payment_id, request_event_id, amount, reason)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {REFUND_COLUMNS}
"""
SELECT_REFUND: Final = f"SELECT {REFUND_COLUMNS} FROM api_refunds WHERE id = $1 AND tenant_id = $2"
# A refund Kafka did not acknowledge: forgotten, and its reservation released — unless the ledger's
# answer already arrived (then it is no longer `processing` and stays).
UNDO_REFUND: Final = """
WITH gone AS (DELETE FROM api_refunds WHERE id = $1 AND status = 'processing' RETURNING payment_id, amount)
UPDATE api_payments AS p SET amount_refund_reserved = p.amount_refund_reserved - gone.amount
FROM gone WHERE p.id = gone.payment_id
"""


class RefundRows:
    """Reads and writes api_refunds (and the payment's reservation) on a connection or pool it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def lock_payment(self, *, payment_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's payment, locked until the transaction ends; None when it has no such payment.
        Call inside a transaction."""
        return await self._db.fetchrow(LOCK_PAYMENT, payment_id, tenant_id)

    async def insert_reserved(
        self,
        *,
        refund_id: str,
        tenant_id: str,
        payment_id: str,
        request_event_id: UUID,
        amount: int,
        reason: str | None,
    ) -> asyncpg.Record:
        """Stores a `processing` refund and reserves its amount on the payment. Call inside the
        transaction that locked the payment."""
        await self._db.execute(RESERVE, payment_id, amount)
        row = await self._db.fetchrow(INSERT_REFUND, refund_id, tenant_id, payment_id, request_event_id, amount, reason)
        assert row is not None
        return row

    async def refund(self, *, refund_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's refund; None when the tenant has no such refund."""
        return await self._db.fetchrow(SELECT_REFUND, refund_id, tenant_id)

    async def undo(self, *, refund_id: str) -> None:
        """Forgets a refund whose request Kafka did not acknowledge, releasing its reservation."""
        await self._db.execute(UNDO_REFUND, refund_id)
