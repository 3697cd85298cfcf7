"""Request-to-pay through the API (issue 9, item 4): the payee asks, the payer approves or declines.

Asking: check the request → resolve payee and payer among the tenant's accounts (a payer alias
through its keyed Raast token; the number goes no further) → store it `pending` until
`expires_at`. Nothing is published: a request moves no money, so the ledger never hears of it.
The magic payer number (schemas/api/magic.py, PAYER_DECLINES_REQUEST) is declined at once, by the
API itself; only that fact is stored, and no payer account is looked up for it.

Approving claims the request (pending → approved, one conditional UPDATE, so a second approval or
a decline racing it loses with a 409), then makes the payment through `Payments.create` (kind
p2p, payer → payee), which records its id on the request in the transaction that stores the
payment: a stored payment is always named by its request. When the payment cannot be made (Kafka
away: 503) the payment row goes (the request's reference to it is cleared, migration 0027) and the
approval is taken back: pending again. A claim is a lease: should the process die between the claim
and the payment, the request reads `approved` with no `payment` for at most APPROVAL_LEASE_S, then
is pending again (no payment can exist for it: the two commit together).

Expiry: a pending request past its `expires_at` reads as `expired` at once, and is written down
as such by whichever comes first — the API's scheduler, which sweeps expired requests every poll
(producers/api/announce.py), or a read or answer of the request here; approve and decline then
answer 409 `payment_request_expired`. Only one of the two can write it (a conditional UPDATE).

Webhook events (producers/api/announce.py) commit with the change they announce: `created` with
the stored request (and `declined` too for the magic payer), `declined` with the decline,
`approved` with the payment that names it (withdrawn with the approval when Kafka then refuses
the payment), `expired` with the write of `expired`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import asyncpg

from producers.api.announce import payment_request_event, withdraw_approved_event
from producers.api.payment_request_rows import PaymentRequestRows
from producers.api.payment_rows import PaymentRows
from producers.api.payments import Payments, not_found
from producers.api.privacy import alias_token, normalize_msisdn
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.api.magic import PAYER_DECLINES_REQUEST
from schemas.api.payment_requests import (
    PAYMENT_REQUEST_ID_PREFIX,
    PaymentRequest,
    PaymentRequestCreate,
    payment_request_from_row,
)
from schemas.api.payments import PaymentCreate

REQUEST_ID_RANDOM_BYTES: Final = 16
APPROVAL_LEASE_S: Final = 30.0  # an approval without its payment after this long was interrupted
APPROVAL_LEASE: Final = timedelta(seconds=APPROVAL_LEASE_S)
MAGIC_DECLINE_NUMBER: Final = normalize_msisdn(PAYER_DECLINES_REQUEST)

Answer = Literal["approved", "declined"]
VERBS: Final[dict[str, str]] = {"approved": "approve", "declined": "decline"}
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def check_payer_given(request: PaymentRequestCreate) -> str:
    """Exactly one of `payer` and `payer_alias`; returns the name of the one given."""
    if request.payer is not None and request.payer_alias is not None:
        raise ApiError(
            status=422,
            code="parameter_unexpected",
            detail="give the payer as 'payer' (an account id) or 'payer_alias' (a mobile number), not both",
            param="payer_alias",
        )
    if request.payer is None and request.payer_alias is None:
        raise ApiError(
            status=422,
            code="parameter_missing",
            detail="'payer' (an account id) or 'payer_alias' (a mobile number) is required",
            param="payer",
        )
    return "payer" if request.payer is not None else "payer_alias"


def is_magic_decline(payer_alias: str) -> bool:
    """True when the payer alias is the magic number whose holder declines at once (in any of the
    accepted forms of a mobile number). Raises a 422 for something that is not a mobile number."""
    try:
        return normalize_msisdn(payer_alias) == MAGIC_DECLINE_NUMBER
    except ValueError as error:  # its message names the accepted forms, never the input
        raise ApiError(status=422, code="invalid_parameter", detail=str(error), param="payer_alias") from None


def shown_status(*, status: str, expires_at: datetime, now: datetime) -> str:
    """The status a client reads: a pending request past its expiry is `expired`, written or not."""
    return "expired" if status == "pending" and expires_at <= now else status


def not_answerable(status: str, answer: Answer) -> ApiError:
    """The 409 for approving or declining a request that is no longer pending."""
    if status == "expired":
        return ApiError(
            status=409,
            code="payment_request_expired",
            detail=f"this payment request expired before anyone could {VERBS[answer]} it; ask again with a new one",
        )
    return ApiError(
        status=409,
        code="payment_request_not_pending",
        detail=f"only a `pending` payment request can be {answer}; this one is `{status}`",
    )


class PaymentRequests:
    """Asks for, answers and reads a tenant's requests-to-pay."""

    def __init__(self, *, pool: asyncpg.Pool, key: bytes, payments: Payments, now: Clock = _wall_clock) -> None:
        self._pool = pool
        self._key = key
        self._payments = payments
        self._now = now

    async def create(self, *, tenant: Tenant, request: PaymentRequestCreate) -> PaymentRequest:
        """Stores a new request, `pending` (or `declined`, for the magic payer number)."""
        payer_param = check_payer_given(request)
        magic = request.payer_alias is not None and is_magic_decline(request.payer_alias)
        now = self._now()
        try:
            accounts = PaymentRows(self._pool)
            if await accounts.account(account_id=request.payee, tenant_id=tenant.id) is None:
                raise not_found("payee", "account with the payee's id")
            payer = None if magic else await self._payer(tenant, request, payer_param)
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
                row = await PaymentRequestRows(connection).insert(
                    request_id=PAYMENT_REQUEST_ID_PREFIX + secrets.token_hex(REQUEST_ID_RANDOM_BYTES),
                    tenant_id=tenant.id,
                    payee=request.payee,
                    payer=payer,
                    magic_decline=magic,
                    amount=request.amount,
                    reference=request.reference,
                    status="declined" if magic else "pending",
                    expires_at=now + timedelta(seconds=request.expires_in),
                )
                await payment_request_event(connection, "payment_request.created", tenant_id=tenant.id, row=row)
                if magic:
                    await payment_request_event(connection, "payment_request.declined", tenant_id=tenant.id, row=row)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return payment_request_from_row(row)

    async def _payer(self, tenant: Tenant, request: PaymentRequestCreate, payer_param: str) -> str:
        """The payer's account id among the tenant's accounts; 404 when it has none, 400 when it is the payee."""
        accounts = PaymentRows(self._pool)
        if request.payer_alias is not None:
            try:
                token = alias_token(self._key, request.payer_alias)
            except ValueError as error:
                raise ApiError(status=422, code="invalid_parameter", detail=str(error), param="payer_alias") from None
            payer = await accounts.account_by_alias(alias_token=token, tenant_id=tenant.id)
        else:
            assert request.payer is not None
            payer = await accounts.account(account_id=request.payer, tenant_id=tenant.id)
        if payer is None:
            raise not_found(payer_param, "account for this payer")
        if payer["id"] == request.payee:
            raise ApiError(
                status=400,
                code="accounts_must_be_different",
                detail="the payer and the payee are the same account; ask another account to pay",
                param=payer_param,
            )
        account_id: str = payer["id"]
        return account_id

    async def get(self, *, tenant: Tenant, request_id: str) -> PaymentRequest:
        """The tenant's request; a pending one past its expiry is written down as `expired` first."""
        try:
            return payment_request_from_row(await self._current(tenant, request_id))
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error

    async def approve(self, *, tenant: Tenant, request_id: str) -> PaymentRequest:
        """Approves a pending request and makes its payment (see the module's docstring)."""
        try:
            rows = PaymentRequestRows(self._pool)
            claimed = await self._answer(tenant, request_id, "approved")
            payment_request = PaymentCreate(payer=claimed["payer"], payee=claimed["payee"], amount=claimed["amount"])

            async def record(connection: asyncpg.Connection, payment_id: str) -> None:
                named = await PaymentRequestRows(connection).record_payment(
                    request_id=request_id, payment_id=payment_id, now=self._now()
                )
                if named is None:  # the lease ran out and someone else answered: store no payment
                    raise not_answerable("approved", "approved")
                await payment_request_event(connection, "payment_request.approved", tenant_id=tenant.id, row=named)

            try:
                await self._payments.create(tenant=tenant, request=payment_request, on_stored=record)
            except BaseException:  # no approval without its payment: pending again, its event withdrawn
                async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
                    await PaymentRequestRows(connection).undo_approval(request_id=request_id, now=self._now())
                    await withdraw_approved_event(connection, request_id=request_id)
                raise
            row = await rows.get(request_id=request_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        assert row is not None  # requests are never deleted
        return payment_request_from_row(row)

    async def decline(self, *, tenant: Tenant, request_id: str) -> PaymentRequest:
        """Declines a pending request; no payment is made."""
        try:
            return payment_request_from_row(await self._answer(tenant, request_id, "declined"))
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error

    async def _answer(self, tenant: Tenant, request_id: str, answer: Answer) -> asyncpg.Record:
        """Moves the request from pending to `answer`; a 404 or 409 saying why it could not."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
            row = await PaymentRequestRows(connection).answer(
                request_id=request_id, tenant_id=tenant.id, status=answer, now=self._now()
            )
            if row is not None and answer == "declined":  # an approval's event waits for its payment
                await payment_request_event(connection, "payment_request.declined", tenant_id=tenant.id, row=row)
        if row is not None:
            return row
        current = await self._current(tenant, request_id)
        raise not_answerable(current["status"], answer)

    async def _current(self, tenant: Tenant, request_id: str) -> asyncpg.Record:
        """The stored request, with a passed expiry written down; 404 when the tenant has none."""
        rows = PaymentRequestRows(self._pool)
        row = await rows.get(request_id=request_id, tenant_id=tenant.id)
        if row is None:
            raise not_found("payment_request_id", "payment request with this id")
        now = self._now()
        if row["status"] == "approved" and row["payment_id"] is None and row["updated_at"] <= now - APPROVAL_LEASE:
            await rows.release_claim(request_id=request_id, claimed_before=now - APPROVAL_LEASE, now=now)
            row = await rows.get(request_id=request_id, tenant_id=tenant.id)
            assert row is not None  # requests are never deleted
        if shown_status(status=row["status"], expires_at=row["expires_at"], now=now) != row["status"]:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
                expired = await PaymentRequestRows(connection).expire(
                    request_id=request_id, tenant_id=tenant.id, now=now
                )
                if expired is not None:  # this read wrote it, not the scheduler's sweep: announce it here
                    await payment_request_event(connection, "payment_request.expired", tenant_id=tenant.id, row=expired)
            row = expired or await rows.get(request_id=request_id, tenant_id=tenant.id)
            assert row is not None  # requests are never deleted
        return row
