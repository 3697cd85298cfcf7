"""Magic values on the way in (issue 9, item 6): which behaviour a number asks for, and the
sandbox-made accounts the magic payee aliases name.

The table itself is the contract's (schemas/api/magic.py). Each magic payee alias names one
account of the tenant, opened at first use as an ordinary api_accounts row whose alias token is
the magic number's, so the payment's payee resolves the usual way. What each one does:

| behaviour            | account                         | what the payment does                          |
|----------------------|---------------------------------|------------------------------------------------|
| account_not_found    | merchant, never announced       | published as usual; the ledger knows no payee  |
| insufficient_funds   | citizen wallet, never funded    | the ledger is asked to debit *this* account    |
|                      |                                 | (to the payer): it refuses, exceeds_credits    |
| payee_limit_exceeded | citizen wallet, tier test_capped | published as usual; every credit is over limit |
| delayed_success      | merchant                        | published DELAYED_SUCCESS_S later (scheduler)  |
| no_answer            | merchant                        | never published; times out (scheduler)         |

Magic accounts cannot be topped up and cannot pay (`refuse_magic`), so the empty one stays empty.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg

from producers.api.accounts import ACCOUNT_ID_RANDOM_BYTES, PRODUCER, PROVIDER
from producers.api.magic_numbers import MAGIC_NUMBERS
from producers.api.privacy import alias_token, holder_token
from producers.api.problems import ApiError
from producers.api.resources import KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.accounts import AccountOpened
from schemas.api.accounts import ACCOUNT_ID_PREFIX
from schemas.api.magic import MagicBehaviour
from schemas.envelope import Envelope

MAGIC_DISTRICT: Final = "Peshawar"
WALLET_BEHAVIOURS: Final = frozenset({"insufficient_funds", "payee_limit_exceeded"})
CAPPED_TIER: Final = "test_capped"

INSERT_MAGIC_ACCOUNT: Final = """
INSERT INTO api_accounts (id, tenant_id, kind, alias_token, district, gender, category, magic)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id
"""
SELECT_MAGIC: Final = "SELECT magic FROM api_accounts WHERE id = $1 AND tenant_id = $2"

Publish = Callable[[Envelope], Awaitable[None]]


def refuse_magic(magic: str | None, *, param: str, use: str) -> None:
    """422 when an account the sandbox made for a magic value is used as something it is not for."""
    if magic is not None:
        raise ApiError(
            status=422,
            code="magic_account",
            detail=f"this account is the sandbox's magic `{magic}` payee; it cannot {use}: use one of your own",
            param=param,
        )


class MagicAccounts:
    """Opens, once per tenant, the account a magic payee alias names."""

    def __init__(self, *, pool: asyncpg.Pool, publish: Publish, key: bytes) -> None:
        self._pool = pool
        self._publish = publish
        self._key = key

    async def ensure(self, *, tenant: Tenant, behaviour: MagicBehaviour) -> None:
        """Opens the tenant's `behaviour` account unless it exists: its row and (except for
        account_not_found) its acknowledged `account.opened` commit together. A concurrent first use
        waits on the row's unique key and then finds it."""
        number = MAGIC_NUMBERS[behaviour]
        wallet = behaviour in WALLET_BEHAVIOURS
        account_id = ACCOUNT_ID_PREFIX + secrets.token_hex(ACCOUNT_ID_RANDOM_BYTES)
        async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
            created = await connection.fetchval(
                INSERT_MAGIC_ACCOUNT,
                account_id,
                tenant.id,
                "citizen_wallet" if wallet else "merchant",
                alias_token(self._key, number),
                MAGIC_DISTRICT,
                "other" if wallet else None,
                None if wallet else "other",
                behaviour,
            )
            if created is None or behaviour == "account_not_found":
                return
            try:
                await self._publish(self._opened(account_id, number, behaviour))
            except KAFKA_UNAVAILABLE as error:  # rolls the row back: the next use tries again
                raise unavailable("Kafka") from error

    async def magic_of(self, *, account_id: str, tenant_id: str) -> str | None:
        """The magic behaviour of one of the tenant's accounts; None for an ordinary account."""
        magic: str | None = await self._pool.fetchval(SELECT_MAGIC, account_id, tenant_id)
        return magic

    def _opened(self, account_id: str, number: str, behaviour: MagicBehaviour) -> AccountOpened:
        event_id = uuid.uuid4()
        wallet = behaviour in WALLET_BEHAVIOURS
        fields: dict[str, object] = (
            {"kind": "citizen_wallet", "gender": "other"}
            if wallet
            else {"kind": "merchant", "merchant_category": "other", "accepted_instruments": ("static_qr",)}
        )
        if behaviour == "payee_limit_exceeded":
            fields["tier"] = CAPPED_TIER
        return AccountOpened.model_validate(
            {
                "event_id": event_id,
                "occurred_at": datetime.now(UTC),
                "producer": PRODUCER,
                "correlation_id": event_id,
                "account_id": account_id,
                "holder_token": holder_token(self._key, number),
                "provider": PROVIDER,
                "district": MAGIC_DISTRICT,
                "raast_alias": alias_token(self._key, number),
                **fields,
            }
        )
