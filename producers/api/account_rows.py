"""The api_accounts table (migration 0021): accounts opened through the API, and their balances
read from the ledger's own ledger_accounts row (absent until the ledger settles the opening)."""

from __future__ import annotations

from typing import Final

import asyncpg

ALIAS_CONSTRAINT: Final = "api_accounts_tenant_alias_key"

ACCOUNT_COLUMNS: Final = "id, kind, alias_token, iban, district, gender, category, tier, test_clock_id, created_at"
INSERT_ACCOUNT: Final = f"""
INSERT INTO api_accounts (id, tenant_id, kind, alias_token, iban, district, gender, category, tier, test_clock_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING {ACCOUNT_COLUMNS}
"""
# available = credits_posted - debits_posted - debits_pending; pending = credits_pending (TigerBeetle's
# reading of a balance: pending debits are already spoken for, pending credits not yet spendable).
# Accounts with their balances: one (below) or a page of them (listing_rows.py) adds its WHERE.
ACCOUNTS_WITH_BALANCES: Final = """
SELECT account.id, account.kind, account.alias_token, account.iban, account.district, account.gender,
       account.category, account.tier, account.test_clock_id, account.created_at,
       ledger.id IS NOT NULL AS settled,
       coalesce(ledger.credits_posted - ledger.debits_posted - ledger.debits_pending, 0) AS available,
       coalesce(ledger.credits_pending, 0) AS pending
FROM api_accounts AS account
LEFT JOIN ledger_accounts AS ledger ON ledger.id = account.id
"""
SELECT_ACCOUNT_WITH_BALANCE: Final = ACCOUNTS_WITH_BALANCES + "WHERE account.id = $1 AND account.tenant_id = $2\n"


class AccountRows:
    """Reads and writes api_accounts on a connection it does not own."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def insert(
        self,
        *,
        account_id: str,
        tenant_id: str,
        kind: str,
        alias_token: str,
        iban: str | None,
        district: str,
        gender: str | None,
        category: str | None,
        tier: str | None,
        test_clock_id: str | None = None,
    ) -> asyncpg.Record:
        """Stores a new account; UniqueViolationError (ALIAS_CONSTRAINT) when the tenant has one with this alias."""
        row = await self._db.fetchrow(
            INSERT_ACCOUNT, account_id, tenant_id, kind, alias_token, iban, district, gender, category, tier,
            test_clock_id,
        )  # fmt: skip
        assert row is not None
        return row

    async def with_balance(self, *, account_id: str, tenant_id: str) -> asyncpg.Record | None:
        """The tenant's account with its balance columns (`settled`, `available`, `pending`); None
        when no such account belongs to this tenant."""
        return await self._db.fetchrow(SELECT_ACCOUNT_WITH_BALANCE, account_id, tenant_id)
