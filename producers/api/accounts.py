"""Accounts opened through the API: the rules, the tokens, the event (issue 9, item 4).

Opening an account, in one database transaction: check the kind's fields → turn the mobile
number into its Raast alias and holder tokens (the number goes no further) → store the row →
publish `account.opened` (keyed by the account id, as the simulation does) and wait for Kafka's
acknowledgement → commit. When Kafka does not acknowledge, the row is rolled back and the client
gets a 503: nothing is stored half-way. (A publish that timed out here but reached Kafka anyway
opens a ledger account no API row names; it holds nothing and is harmless.)

An account is `opening` until the ledger has settled its `account.opened` into ledger_accounts,
then `open`; its balance is read from there.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg

from producers.api.account_rows import ALIAS_CONSTRAINT, AccountRows
from producers.api.iban import make_iban
from producers.api.magic_numbers import is_magic_number
from producers.api.privacy import alias_token, holder_token
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.accounts import AccountOpened
from schemas.api.accounts import ACCOUNT_ID_PREFIX, WALLET_TIER_DEFAULT, Account, AccountCreate, ApiWalletTier, Balance
from schemas.envelope import Envelope

PROVIDER: Final = "SBOX"  # the sandbox's own bank and wallet provider code
BANK_CODE: Final = PROVIDER  # the 4 letters in its IBANs
PRODUCER: Final = "kpsandbox-api"
ACCOUNT_ID_RANDOM_BYTES: Final = 16
ACCOUNT_NUMBER_BITS: Final = 53  # below 10^16: fits the IBAN's 16 digits
CITIZEN_KINDS: Final = frozenset({"citizen_wallet", "citizen_bank"})

Publish = Callable[[Envelope], Awaitable[None]]
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def check_kind_fields(request: AccountCreate) -> None:
    """Citizens need `gender` and take no `category`; merchants need `category` and take no `gender`."""
    citizen = request.kind in CITIZEN_KINDS
    needed, refused = ("gender", "category") if citizen else ("category", "gender")
    if getattr(request, needed) is None:
        raise ApiError(
            status=422, code="parameter_missing", detail=f"a {request.kind} account needs '{needed}'", param=needed
        )
    if getattr(request, refused) is not None:
        raise ApiError(
            status=422,
            code="parameter_unexpected",
            detail=f"'{refused}' is for {'merchant' if citizen else 'citizen'} accounts, not {request.kind}",
            param=refused,
        )


def check_tier(request: AccountCreate) -> ApiWalletTier | None:
    """A citizen wallet's tier (WALLET_TIER_DEFAULT unless given); bank and merchant accounts take none."""
    if request.kind != "citizen_wallet":
        if request.tier is not None:
            raise ApiError(
                status=422,
                code="parameter_unexpected",
                detail="'tier' is for citizen_wallet accounts (SBP's branchless-banking tiers)",
                param="tier",
            )
        return None
    return request.tier or WALLET_TIER_DEFAULT


def tokens(key: bytes, msisdn: str) -> tuple[str, str]:
    """(Raast alias token, holder token) of a mobile number; 422 naming `msisdn` when it is not one."""
    try:
        return alias_token(key, msisdn), holder_token(key, msisdn)
    except ValueError as error:  # its message names the accepted forms, never the input
        raise ApiError(status=422, code="invalid_parameter", detail=str(error), param="msisdn") from None


def account_from_row(row: asyncpg.Record, *, settled: bool, available: int, pending: int) -> Account:
    """The API's view of a stored account and its ledger balance."""
    return Account(
        id=row["id"],
        kind=row["kind"],
        status="open" if settled else "opening",
        raast_alias=row["alias_token"],
        iban=row["iban"],
        district=row["district"],
        gender=row["gender"],
        category=row["category"],
        tier=row["tier"],
        test_clock=row["test_clock_id"],
        balance=Balance(available=available, pending=pending),
        created_at=row["created_at"],
    )


class Accounts:
    """Opens and reads a tenant's accounts."""

    def __init__(self, *, pool: asyncpg.Pool, publish: Publish, key: bytes, now: Clock = _wall_clock) -> None:
        self._pool = pool
        self._publish = publish
        self._key = key
        self._now = now

    async def open(self, *, tenant: Tenant, request: AccountCreate) -> Account:
        """Stores and announces a new account of the tenant (see the module's docstring)."""
        check_kind_fields(request)
        if is_magic_number(request.msisdn):
            raise ApiError(
                status=422,
                code="magic_number",
                detail="this number is one of the sandbox's magic values (GET /v1/test_helpers/magic_values); "
                "open the account with another number",
                param="msisdn",
            )
        alias, holder = tokens(self._key, request.msisdn)
        tier = check_tier(request)
        account_id = ACCOUNT_ID_PREFIX + secrets.token_hex(ACCOUNT_ID_RANDOM_BYTES)
        iban = None
        if request.kind == "citizen_bank":
            iban = make_iban(bank_code=BANK_CODE, account_number=secrets.randbits(ACCOUNT_NUMBER_BITS))
        event_id = uuid.uuid4()
        event = AccountOpened(
            event_id=event_id,
            occurred_at=self._now(),
            producer=PRODUCER,
            correlation_id=event_id,
            account_id=account_id,
            kind=request.kind,
            holder_token=holder,
            provider=PROVIDER,
            district=request.district,
            iban=iban,
            raast_alias=alias,
            gender=request.gender,
            merchant_category=request.category,
            tier=tier,
        )
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
                row = await AccountRows(connection).insert(
                    account_id=account_id,
                    tenant_id=tenant.id,
                    kind=request.kind,
                    alias_token=alias,
                    iban=iban,
                    district=request.district,
                    gender=request.gender,
                    category=request.category,
                    tier=tier,
                    test_clock_id=request.test_clock,
                )
                try:
                    await self._publish(event)
                except KAFKA_UNAVAILABLE as error:  # rolls the row back: no account without its event
                    raise unavailable("Kafka") from error
        except asyncpg.ForeignKeyViolationError as error:  # api_accounts_test_clock_fkey: not the tenant's clock
            raise ApiError(
                status=404, code="not_found", detail="you have no test clock with this id", param="test_clock"
            ) from error
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != ALIAS_CONSTRAINT:
                raise  # a repeated 128-bit id or 53-bit account number: a broken random source
            raise ApiError(
                status=409,
                code="alias_in_use",
                detail="another of your accounts has this mobile number as its Raast alias; one number, one account",
                param="msisdn",
            ) from None
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return account_from_row(row, settled=False, available=0, pending=0)

    async def get(self, *, tenant: Tenant, account_id: str) -> Account:
        """The tenant's account with its balance; 404 when the tenant has no such account."""
        try:
            row = await AccountRows(self._pool).with_balance(account_id=account_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise ApiError(status=404, code="not_found", detail="you have no account with this id", param="account_id")
        return account_from_row(row, settled=row["settled"], available=row["available"], pending=row["pending"])
