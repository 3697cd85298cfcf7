"""The SQL behind the API's listings (producers/api/listings.py): one page of a tenant's accounts,
payments, or one account's ledger transfers, newest first, after a (time, id) position.

Every query orders by (time DESC, id DESC) and continues strictly after the position it is given
(`$… IS NULL` on the first page), so a page never repeats an item of an earlier one. Each asks
for one row more than the page holds: whether there is a next page is that row's existence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from producers.api.account_rows import ACCOUNTS_WITH_BALANCES
from producers.api.payment_rows import PAYMENT_COLUMNS

SELECT_TENANT_ACCOUNT_ID: Final = "SELECT id FROM api_accounts WHERE id = $1 AND tenant_id = $2"

# The tenant's accounts with their ledger balances, as GET /v1/accounts/{id} reads one
# (account_rows.py); the sandbox's magic accounts (migration 0026) are the sandbox's, not listed.
SELECT_ACCOUNTS_PAGE: Final = (
    ACCOUNTS_WITH_BALANCES
    + """WHERE account.tenant_id = $1 AND account.magic IS NULL
  AND ($2::timestamptz IS NULL OR (account.created_at, account.id) < ($2::timestamptz, $3::text))
ORDER BY account.created_at DESC, account.id DESC
LIMIT $4
"""
)

SELECT_PAYMENTS_PAGE: Final = f"""
SELECT {PAYMENT_COLUMNS} FROM api_payments
WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""

# One account's transfers from the ledger's own table, each side read through its partial index
# (migration 0025: the `LIKE 'acc\\_%'` predicates must stay word for word as the indexes say).
# A post, void or expiry names its authorisation in pending_id, so the payment is found through it;
# a refund's transfer names its refund, and the refund its payment.
SELECT_TRANSFERS_PAGE: Final = r"""
WITH sides AS (
    (SELECT t.id, 'debit' AS direction, t.credit_account_id AS counterparty, t.amount, t.flags, t.pending_id,
            t.occurred_at
     FROM ledger_transfers AS t
     WHERE t.debit_account_id = $1 AND t.debit_account_id LIKE 'acc\_%'
       AND ($2::timestamptz IS NULL OR (t.occurred_at, t.id) < ($2::timestamptz, $3::uuid))
     ORDER BY t.occurred_at DESC, t.id DESC
     LIMIT $4)
    UNION ALL
    (SELECT t.id, 'credit', t.debit_account_id, t.amount, t.flags, t.pending_id, t.occurred_at
     FROM ledger_transfers AS t
     WHERE t.credit_account_id = $1 AND t.credit_account_id LIKE 'acc\_%'
       AND ($2::timestamptz IS NULL OR (t.occurred_at, t.id) < ($2::timestamptz, $3::uuid))
     ORDER BY t.occurred_at DESC, t.id DESC
     LIMIT $4)
), page AS (
    SELECT * FROM sides ORDER BY occurred_at DESC, id DESC LIMIT $4
)
SELECT page.id, page.direction, page.counterparty, page.amount, page.flags, page.occurred_at,
       pending.state AS pending_state,
       coalesce(payment.id, refund.payment_id) AS payment, top_up.id AS top_up, refund.id AS refund
FROM page
LEFT JOIN ledger_pending AS pending ON pending.id = page.id AND page.flags = 1
LEFT JOIN api_payments AS payment
       ON payment.request_event_id = coalesce(page.pending_id, page.id) AND payment.tenant_id = $5
LEFT JOIN api_top_ups AS top_up ON top_up.request_event_id = page.id AND top_up.tenant_id = $5
LEFT JOIN api_refunds AS refund ON refund.request_event_id = page.id AND refund.tenant_id = $5
ORDER BY page.occurred_at DESC, page.id DESC
"""


class ListingRows:
    """Reads pages of the tenant's objects on a connection (or pool) it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def owns_account(self, *, account_id: str, tenant_id: str) -> bool:
        """True when the account is the tenant's."""
        return await self._db.fetchval(SELECT_TENANT_ACCOUNT_ID, account_id, tenant_id) is not None

    async def accounts(
        self, *, tenant_id: str, after: tuple[datetime, str] | None, rows_max: int
    ) -> list[asyncpg.Record]:
        """Up to `rows_max` of the tenant's accounts with balances, created before `after`."""
        at, last_id = after if after is not None else (None, None)
        return list(await self._db.fetch(SELECT_ACCOUNTS_PAGE, tenant_id, at, last_id, rows_max))

    async def payments(
        self, *, tenant_id: str, after: tuple[datetime, str] | None, rows_max: int
    ) -> list[asyncpg.Record]:
        """Up to `rows_max` of the tenant's payments, created before `after`."""
        at, last_id = after if after is not None else (None, None)
        return list(await self._db.fetch(SELECT_PAYMENTS_PAGE, tenant_id, at, last_id, rows_max))

    async def transfers(
        self, *, account_id: str, tenant_id: str, after: tuple[datetime, UUID] | None, rows_max: int
    ) -> list[asyncpg.Record]:
        """Up to `rows_max` of the account's ledger transfers, made before `after`. The caller has
        checked that the account is the tenant's: the related ids are looked up within the tenant."""
        at, last_id = after if after is not None else (None, None)
        return list(await self._db.fetch(SELECT_TRANSFERS_PAGE, account_id, at, last_id, rows_max, tenant_id))
