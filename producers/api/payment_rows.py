"""The API's payment tables (migration 0022): api_payments, api_payment_actions, api_top_ups and
api_sandbox_agents. The views consumer (consumers/views) writes the statuses; this module writes
the rows the API creates and reads them back, always within one tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

PAYMENT_COLUMNS: Final = (
    "id, status, payer, payee, amount, amount_captured, amount_refunded, kind, capture_method, expires_at,"
    " failure_code, failure_message, created_at, updated_at"
)
TOP_UP_COLUMNS: Final = "id, status, account, amount, failure_code, failure_message, created_at, updated_at"

# An account with what a request needs of it: its kind, its magic behaviour, and its test clock's
# id and time (NULL for an account on wall time; producers/api/test_clocks.py).
TENANT_ACCOUNT: Final = """
SELECT account.id, account.kind, account.magic, account.test_clock_id, clock.frozen_time AS clock_time
FROM api_accounts AS account LEFT JOIN api_test_clocks AS clock ON clock.id = account.test_clock_id
"""
SELECT_TENANT_ACCOUNT: Final = TENANT_ACCOUNT + "WHERE account.id = $1 AND account.tenant_id = $2"
SELECT_TENANT_ACCOUNT_BY_ALIAS: Final = TENANT_ACCOUNT + "WHERE account.alias_token = $1 AND account.tenant_id = $2"

INSERT_PAYMENT: Final = f"""
INSERT INTO api_payments (id, tenant_id, request_event_id, awaiting_event_id, payer, payee, amount, kind,
                          capture_method, expires_at)
VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9)
RETURNING {PAYMENT_COLUMNS}, request_event_id
"""
SELECT_PAYMENT: Final = f"""
SELECT {PAYMENT_COLUMNS}, request_event_id FROM api_payments WHERE id = $1 AND tenant_id = $2
"""
# One payment read together with the request's authentication (GET /v1/payments/{id}, polled by
# clients): the active tenant whose key hash is $1, with its payment $2 if it has one. No row: the key
# is unknown or revoked; a row whose payment columns are NULL: the tenant has no such payment.
_JOINED_PAYMENT_COLUMNS: Final = ", ".join(f"payment.{column.strip()}" for column in PAYMENT_COLUMNS.split(","))
SELECT_PAYMENT_BY_KEY: Final = f"""
SELECT tenant.id AS tenant_id, {_JOINED_PAYMENT_COLUMNS}
FROM api_tenants AS tenant
LEFT JOIN api_payments AS payment ON payment.id = $2 AND payment.tenant_id = tenant.id
WHERE tenant.key_hash = $1 AND tenant.revoked_at IS NULL
"""
# A capture or cancel: only from `requires_capture`, and the payment then waits for its answer.
# Locks the row, so two concurrent captures cannot both start.
BEGIN_ACTION: Final = f"""
UPDATE api_payments
SET status = 'processing', awaiting_event_id = $3, failure_code = NULL, failure_message = NULL, updated_at = now()
WHERE id = $1 AND tenant_id = $2 AND status = 'requires_capture'
RETURNING {PAYMENT_COLUMNS}, request_event_id
"""
INSERT_ACTION: Final = """
INSERT INTO api_payment_actions (request_event_id, payment_id, action, amount) VALUES ($1, $2, $3, $4)
"""
# Undoing an action whose request Kafka did not acknowledge (the client gets a 503).
DELETE_ACTION: Final = "DELETE FROM api_payment_actions WHERE request_event_id = $1"
UNDO_ACTION: Final = """
UPDATE api_payments SET status = 'requires_capture', awaiting_event_id = NULL, updated_at = now()
WHERE id = $1 AND awaiting_event_id = $2 AND status = 'processing'
"""
DELETE_PAYMENT: Final = "DELETE FROM api_payments WHERE id = $1 AND status = 'processing'"

# The tenant's sandbox agent row, created at first use and locked until its opening is announced.
ENSURE_AGENT: Final = """
INSERT INTO api_sandbox_agents (tenant_id, account_id) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING
"""
LOCK_AGENT: Final = "SELECT account_id, announced FROM api_sandbox_agents WHERE tenant_id = $1 FOR UPDATE"
MARK_AGENT_ANNOUNCED: Final = "UPDATE api_sandbox_agents SET announced = true WHERE tenant_id = $1"

INSERT_TOP_UP: Final = f"""
INSERT INTO api_top_ups (id, tenant_id, request_event_id, account, agent_account, amount)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {TOP_UP_COLUMNS}
"""
SELECT_TOP_UP: Final = f"SELECT {TOP_UP_COLUMNS} FROM api_top_ups WHERE id = $1 AND tenant_id = $2"
DELETE_TOP_UP: Final = "DELETE FROM api_top_ups WHERE id = $1 AND status = 'processing'"


class PaymentRows:
    """Reads and writes the API's payment tables on a connection (or pool) it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def account(self, *, account_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's account (`id`, `kind`, `magic`, `test_clock_id`, `clock_time`), or None."""
        return await self._db.fetchrow(SELECT_TENANT_ACCOUNT, account_id, tenant_id)

    async def account_by_alias(self, *, alias_token: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's account whose Raast alias token this is (`id`, `kind`, `magic`); None when none is."""
        return await self._db.fetchrow(SELECT_TENANT_ACCOUNT_BY_ALIAS, alias_token, tenant_id)

    async def insert_payment(
        self,
        *,
        payment_id: str,
        tenant_id: str,
        request_event_id: UUID,
        payer: str,
        payee: str,
        amount: int,
        kind: str,
        capture_method: str,
        expires_at: datetime | None,
    ) -> asyncpg.Record:
        """Stores a new `processing` payment awaiting the answer to `request_event_id`."""
        row = await self._db.fetchrow(
            INSERT_PAYMENT,
            payment_id,
            tenant_id,
            request_event_id,
            payer,
            payee,
            amount,
            kind,
            capture_method,
            expires_at,
        )
        assert row is not None
        return row

    async def payment(self, *, payment_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's payment; None when the tenant has no such payment."""
        return await self._db.fetchrow(SELECT_PAYMENT, payment_id, tenant_id)

    async def payment_by_key(self, *, key_hash: bytes, payment_id: str) -> asyncpg.Record | None:
        """The payment as the active tenant of `key_hash` sees it: None when no active tenant has that
        key; a row with `id` NULL when the tenant has no such payment (SELECT_PAYMENT_BY_KEY)."""
        return await self._db.fetchrow(SELECT_PAYMENT_BY_KEY, key_hash, payment_id)

    async def delete_payment(self, *, payment_id: str) -> None:
        """Forgets a payment whose request Kafka did not acknowledge."""
        await self._db.execute(DELETE_PAYMENT, payment_id)

    async def begin_action(
        self, *, payment_id: str, tenant_id: str, request_event_id: UUID, action: str, amount: int | None
    ) -> asyncpg.Record | None:
        """Moves a `requires_capture` payment to `processing`, awaiting `request_event_id`, and
        records the action; None (nothing written) when the payment is not `requires_capture`.
        Call inside a transaction."""
        row = await self._db.fetchrow(BEGIN_ACTION, payment_id, tenant_id, request_event_id)
        if row is not None:
            await self._db.execute(INSERT_ACTION, request_event_id, payment_id, action, amount)
        return row

    async def undo_action(self, *, payment_id: str, request_event_id: UUID) -> None:
        """Takes back an action whose request Kafka did not acknowledge. Call inside a transaction."""
        await self._db.execute(UNDO_ACTION, payment_id, request_event_id)
        await self._db.execute(DELETE_ACTION, request_event_id)

    async def lock_agent(self, *, tenant_id: str, new_account_id: str) -> asyncpg.Record:
        """The tenant's sandbox agent (`account_id`, `announced`), created with `new_account_id`
        if it has none, locked until the transaction ends. Call inside a transaction."""
        await self._db.execute(ENSURE_AGENT, tenant_id, new_account_id)
        row = await self._db.fetchrow(LOCK_AGENT, tenant_id)
        assert row is not None
        return row

    async def mark_agent_announced(self, *, tenant_id: str) -> None:
        """Records that the agent's account.opened reached Kafka."""
        await self._db.execute(MARK_AGENT_ANNOUNCED, tenant_id)

    async def insert_top_up(
        self, *, top_up_id: str, tenant_id: str, request_event_id: UUID, account: str, agent_account: str, amount: int
    ) -> asyncpg.Record:
        """Stores a new `processing` top-up."""
        row = await self._db.fetchrow(
            INSERT_TOP_UP, top_up_id, tenant_id, request_event_id, account, agent_account, amount
        )
        assert row is not None
        return row

    async def top_up(self, *, top_up_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's top-up; None when the tenant has no such top-up."""
        return await self._db.fetchrow(SELECT_TOP_UP, top_up_id, tenant_id)

    async def delete_top_up(self, *, top_up_id: str) -> None:
        """Forgets a top-up whose request Kafka did not acknowledge."""
        await self._db.execute(DELETE_TOP_UP, top_up_id)
