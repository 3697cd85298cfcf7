"""Webhook events the API records itself (issue 10, item 3): what the ledger never decides.

Each is recorded in the transaction that makes the change it announces (infra/webhook_events.py
writes it, with one delivery per subscribed endpoint), so no event is lost and none is doubled:

| event                        | recorded by, in the transaction that…                              |
|------------------------------|--------------------------------------------------------------------|
| `payment_request.created`    | stores the request (payment_requests.py)                           |
| `payment_request.approved`   | stores the approval's payment and names it on the request (and is  |
|                              | withdrawn if Kafka then refuses that payment: approval taken back) |
| `payment_request.declined`   | declines it (and, for the magic payer, stores it: created+declined)|
| `payment_request.expired`    | writes `expired`: the scheduler's sweep (EXPIRE_DUE_REQUESTS), or a|
|                              | read of the request that finds its time passed, whichever is first |
| `account.opened`             | marks an account announced once its ledger_accounts row exists (the|
|                              | scheduler's sweep: the ledger opens accounts, the API only asks)   |
| `payment.failed` (timed_out) | times out a no-answer payment (scheduler.py)                       |

The status changes are conditional UPDATEs that only one writer can win, and migration 0030's
unique index allows one event of these types per object, so a sweep racing a read announces once.
Sweeps take at most SWEEP_BATCH_MAX rows a poll, with SKIP LOCKED, so two API processes share them.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from infra.webhook_events import record_event
from producers.api.account_rows import ACCOUNTS_WITH_BALANCES
from producers.api.accounts import account_from_row
from producers.api.payment_request_rows import REQUEST_COLUMNS
from schemas.api.payment_requests import payment_request_from_row
from schemas.api.payments import payment_from_row
from schemas.webhooks import WebhookEventType

SWEEP_BATCH_MAX: Final = 100  # rows one sweep takes per poll

# Pending requests whose time has passed, written down as expired (oldest first).
EXPIRE_DUE_REQUESTS: Final = f"""
WITH due AS (
    SELECT id FROM api_payment_requests
    WHERE status = 'pending' AND expires_at <= now()
    ORDER BY expires_at LIMIT {SWEEP_BATCH_MAX}
    FOR UPDATE SKIP LOCKED
)
UPDATE api_payment_requests AS request SET status = 'expired', updated_at = now()
FROM due WHERE request.id = due.id AND request.status = 'pending'
RETURNING request.tenant_id, {", ".join(f"request.{c.strip()}" for c in REQUEST_COLUMNS.split(","))}
"""
# Accounts the ledger has opened (its row exists) that were not announced yet.
CLAIM_OPENED_ACCOUNTS: Final = f"""
SELECT account.id, account.tenant_id, account.magic IS NOT NULL AS magic
FROM api_accounts AS account JOIN ledger_accounts AS ledger ON ledger.id = account.id
WHERE NOT account.opened_announced
ORDER BY account.created_at LIMIT {SWEEP_BATCH_MAX}
FOR UPDATE OF account SKIP LOCKED
"""
# An approval taken back (Kafka refused its payment, whose row is gone): its event goes too, unless
# the request names a payment after all (another approval won it since).
WITHDRAW_APPROVED: Final = """
DELETE FROM api_events
WHERE object_id = $1 AND type = 'payment_request.approved'
  AND NOT EXISTS (SELECT 1 FROM api_payment_requests WHERE id = $1 AND payment_id IS NOT NULL)
"""
MARK_ANNOUNCED: Final = "UPDATE api_accounts SET opened_announced = true WHERE id = ANY($1::text[])"
SELECT_OPENED: Final = ACCOUNTS_WITH_BALANCES + "WHERE account.id = ANY($1::text[])\n"


async def payment_request_event(
    db: asyncpg.Connection, type: WebhookEventType, *, tenant_id: str, row: asyncpg.Record
) -> str | None:
    """Records a request's event with the request as `row` shows it (just written, in this transaction)."""
    data = payment_request_from_row(row).model_dump(mode="json")
    return await record_event(db, tenant_id=tenant_id, type=type, object_id=row["id"], data=data)


async def withdraw_approved_event(db: asyncpg.Connection, *, request_id: str) -> None:
    """Deletes the `payment_request.approved` event of an approval taken back, with its deliveries
    (ON DELETE CASCADE). One already delivered in the moments before cannot be unsent: its
    `data.payment` then names a payment that does not exist, and the request is `pending` again."""
    await db.execute(WITHDRAW_APPROVED, request_id)


async def payment_failed_event(db: asyncpg.Connection, *, tenant_id: str, row: asyncpg.Record) -> str | None:
    """Records `payment.failed` for a payment the API itself failed (timed out), as `row` shows it."""
    data = payment_from_row(row).model_dump(mode="json")
    return await record_event(db, tenant_id=tenant_id, type="payment.failed", object_id=row["id"], data=data)


async def expire_due_requests(db: asyncpg.Connection) -> int:
    """Writes `expired` on pending requests whose time has passed, each with its event; how many."""
    rows = await db.fetch(EXPIRE_DUE_REQUESTS)
    for row in rows:
        await payment_request_event(db, "payment_request.expired", tenant_id=row["tenant_id"], row=row)
    return len(rows)


async def announce_opened_accounts(db: asyncpg.Connection) -> int:
    """Records `account.opened` for accounts the ledger has opened since the last sweep; how many.
    The sandbox's own magic accounts (producers/api/magic.py) are marked without an event: the
    tenant never asked for them."""
    claimed = await db.fetch(CLAIM_OPENED_ACCOUNTS)
    if not claimed:
        return 0
    tenants = {row["id"]: row["tenant_id"] for row in claimed if not row["magic"]}
    for row in await db.fetch(SELECT_OPENED, sorted(tenants)):
        account = account_from_row(row, settled=row["settled"], available=row["available"], pending=row["pending"])
        data = account.model_dump(mode="json")
        await record_event(db, tenant_id=tenants[row["id"]], type="account.opened", object_id=row["id"], data=data)
    await db.execute(MARK_ANNOUNCED, [row["id"] for row in claimed])
    return len(tenants)
