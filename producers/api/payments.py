"""Payments made through the API: the rules, the event, the status (issue 9, item 4).

Making a payment: check the request → resolve payer and payee among the tenant's accounts (the
payee by id, alias, IBAN or QR: producers/api/payees.py) → store the row as
`processing`, awaiting the answer to its `payment.requested`, and commit → publish the request
(keyed by the payer, as the simulation does) and wait for Kafka's acknowledgement. The row is
committed *before* the publish so the views consumer always finds it when the ledger's outcome
arrives; when Kafka does not acknowledge, the row is deleted and the client gets a 503.

Capture and cancel publish a `payment.post_requested` / `payment.void_requested` for the
authorisation and move the payment back to `processing` until the ledger answers. From there on
the views consumer (consumers/views) writes the status; `get_by_key` reads it, optionally waiting
(`?wait=N`) for it to become final, woken by PostgreSQL's notification of each change (payment_changes.py).
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from producers.api import scheduler
from producers.api.magic import MagicAccounts, refuse_magic
from producers.api.magic_numbers import payee_behaviour
from producers.api.payees import amount_of, check_payee, claim_dynamic_qr, find_payee, qr_contract_kind
from producers.api.payment_changes import PaymentChanges
from producers.api.payment_rows import PaymentRows
from producers.api.polling import poll_until
from producers.api.problems import UNKNOWN_KEY, ApiError, unauthorized
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant, well_formed_key_hash
from producers.api.test_clocks import check_clock_expiry, clock_of, request_time
from schemas.api.magic import DELAYED_SUCCESS_S, NO_ANSWER_TIMEOUT_S, MagicBehaviour
from schemas.api.payments import (
    EXPIRES_IN_DEFAULT_S,
    PAYMENT_ID_PREFIX,
    SETTLED_PAYMENT_STATUSES,
    Payment,
    PaymentCapture,
    PaymentCreate,
    payment_from_row,
)
from schemas.envelope import Envelope
from schemas.payments import PaymentKind, PaymentPostRequested, PaymentRequested, PaymentVoidRequested, Rail

PAYMENT_ID_RANDOM_BYTES: Final = 16
# The API's payment kinds as the contract names them; a P2M payment without a QR is the payer
# keying the amount in, as at a static QR.
CONTRACT_KINDS: Final[dict[str, PaymentKind]] = {
    "p2p": "p2p",
    "p2m": "p2m_static_qr",
    "bill": "bill_payment",
    "ecommerce": "ecommerce",
}
# The rail a payment runs on: a wallet pays from the wallet; a bank account over the kind's rail.
BANK_RAILS: Final[dict[str, Rail]] = {"p2p": "raast", "p2m": "raast", "bill": "bank", "ecommerce": "card"}
WALLET_KIND: Final = "citizen_wallet"
VERBS: Final = {"capture": "captured", "cancel": "canceled"}
# Magic payments whose request is not published when they are made (the scheduler sends it, or nothing does).
UNPUBLISHED_BEHAVIOURS: Final = frozenset({"delayed_success", "no_answer"})

Publish = Callable[[Envelope], Awaitable[None]]
# Called with the storing transaction's connection and the new payment's id (request-to-pay records it).
OnStored = Callable[[asyncpg.Connection, str], Awaitable[None]]
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def check_expiry(request: PaymentCreate) -> int:
    """The authorisation's lifetime in seconds (0 for automatic capture, which takes none)."""
    if request.capture_method == "automatic":
        if request.expires_in is not None:
            raise ApiError(
                status=422,
                code="parameter_unexpected",
                detail='\'expires_in\' applies only with "capture_method": "manual"',
                param="expires_in",
            )
        return 0
    return request.expires_in if request.expires_in is not None else EXPIRES_IN_DEFAULT_S


def check_capture_amount(*, asked: int | None, authorised: int) -> None:
    """A partial capture is at most the authorised amount."""
    if asked is not None and asked > authorised:
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail=f"a capture is at most the authorised amount ({authorised} paisa)",
            param="amount",
        )


def not_found(param: str, what: str) -> ApiError:
    """The 404 for an id (or alias) that names nothing of this tenant."""
    return ApiError(status=404, code="not_found", detail=f"you have no {what}", param=param)


def not_capturable(status: str, verb: str) -> ApiError:
    """The 409 for a capture or cancel of a payment that is not awaiting one."""
    return ApiError(
        status=409,
        code="payment_not_capturable",
        detail=f"only a `requires_capture` payment can be {verb}; this one is `{status}`",
    )


class Payments:
    """Makes, captures, cancels and reads a tenant's payments."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        publish: Publish,
        key: bytes,
        now: Clock = _wall_clock,
        changes: PaymentChanges | None = None,  # wakes `get_by_key`'s waits; without it they poll
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._key = key
        self._now = now
        self._changes = changes

    async def create(self, *, tenant: Tenant, request: PaymentCreate, on_stored: OnStored | None = None) -> Payment:
        """Stores and publishes a new payment (see the module's docstring); `processing`. `on_stored`
        runs inside the transaction that stores it, so what it writes commits with the payment or not at all."""
        # payees.py: the payee by id, alias, IBAN or QR; the request comes back with its amount and kind settled.
        payee_query = check_payee(request, key=self._key, now=self._now())
        request, payee_param = payee_query.request, payee_query.param
        expires_in = check_expiry(request)
        behaviour = payee_behaviour(request.payee_alias)
        try:
            if behaviour is not None:  # the magic payee's account, opened at first use
                await MagicAccounts(pool=self._pool, publish=self._publish, key=self._key).ensure(
                    tenant=tenant, behaviour=behaviour
                )
            rows = PaymentRows(self._pool)
            payer = await rows.account(account_id=request.payer, tenant_id=tenant.id)
            if payer is None:
                raise not_found("payer", "account with the payer's id")
            refuse_magic(payer["magic"], param="payer", use="pay")
            check_clock_expiry(request, payer, expires_in)
            payee = await find_payee(self._pool, payee_query, tenant_id=tenant.id)
            if payee["id"] == payer["id"]:
                raise ApiError(
                    status=400,
                    code="accounts_must_be_different",
                    detail="the payer and the payee are the same account; pay another account",
                    param=payee_param,
                )
            event = self._requested(request, payer=payer, payee=payee, expires_in=expires_in, behaviour=behaviour)
            row = await self._store(tenant, request, event, payee=payee["id"], behaviour=behaviour, on_stored=on_stored)
            if behaviour not in UNPUBLISHED_BEHAVIOURS:
                try:
                    await self._publish(event)
                except KAFKA_UNAVAILABLE as error:  # no payment without its request
                    await PaymentRows(self._pool).delete_payment(payment_id=row["id"])
                    raise unavailable("Kafka") from error
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return payment_from_row(row)

    def _requested(
        self,
        request: PaymentCreate,
        *,
        payer: asyncpg.Record,
        payee: asyncpg.Record,
        expires_in: int,
        behaviour: MagicBehaviour | None,
    ) -> PaymentRequested:
        """The payment's request to the ledger. For the insufficient-funds magic value the ledger is
        asked to debit the magic (always empty) account instead, towards the payer: it refuses."""
        debit, credit = (payee, payer) if behaviour == "insufficient_funds" else (payer, payee)
        event_id = uuid.uuid4()
        occurred_at, producer = request_time(payer, self._now())  # the payer's test clock, if any
        return PaymentRequested(
            event_id=event_id,
            occurred_at=occurred_at,
            producer=producer,
            correlation_id=event_id,  # the flow's id: its capture or cancel carries it too
            kind=qr_contract_kind(request.qr) or CONTRACT_KINDS[request.kind],
            rail="wallet" if debit["kind"] == WALLET_KIND else BANK_RAILS[request.kind],
            payer_account_id=debit["id"],
            payee_account_id=credit["id"],
            amount=amount_of(request),
            pending=request.capture_method == "manual",
            timeout_seconds=expires_in,
        )

    async def _store(
        self,
        tenant: Tenant,
        request: PaymentCreate,
        event: PaymentRequested,
        *,
        payee: str,
        behaviour: MagicBehaviour | None,
        on_stored: OnStored | None,
    ) -> asyncpg.Record:
        """Stores the `processing` payment with what is scheduled for it (scheduler.py), in one
        transaction: a delayed or unanswered magic payment, and an authorisation's expiry."""
        expires_at = event.occurred_at + timedelta(seconds=event.timeout_seconds) if event.pending else None
        payment_id = PAYMENT_ID_PREFIX + secrets.token_hex(PAYMENT_ID_RANDOM_BYTES)
        async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
            row = await PaymentRows(connection).insert_payment(
                payment_id=payment_id,
                tenant_id=tenant.id,
                request_event_id=event.event_id,
                payer=request.payer,
                payee=payee,
                amount=amount_of(request),
                kind=request.kind,
                capture_method=request.capture_method,
                expires_at=expires_at,
            )
            await claim_dynamic_qr(connection, request, tenant_id=tenant.id, payment_id=payment_id)  # 409 if paid
            if on_stored is not None:
                await on_stored(connection, payment_id)
            if behaviour == "delayed_success":
                due = scheduler.due_after(event.occurred_at, DELAYED_SUCCESS_S)
                await scheduler.schedule(connection, payment_id=payment_id, action="publish", due_at=due, event=event)
            elif behaviour == "no_answer":
                due = scheduler.due_after(event.occurred_at, NO_ANSWER_TIMEOUT_S)
                await scheduler.schedule(connection, payment_id=payment_id, action="time_out", due_at=due)
            if expires_at is not None:
                release = self._expiry_release(event, expires_at)
                await scheduler.schedule(
                    connection,
                    payment_id=payment_id,
                    action="expire",
                    due_at=expires_at,
                    event=release,
                    test_clock_id=clock_of(event.producer),
                )
        return row

    def _expiry_release(self, event: PaymentRequested, expires_at: datetime) -> PaymentVoidRequested:
        """The void sent when an authorisation's time is up, dated then (see scheduler.py, `expire`)."""
        return PaymentVoidRequested(
            event_id=uuid.uuid4(),
            occurred_at=expires_at,
            producer=event.producer,
            correlation_id=event.event_id,
            pending_id=event.event_id,
            payer_account_id=event.payer_account_id,
        )

    async def get(self, *, tenant: Tenant, payment_id: str) -> Payment:
        """The tenant's payment, as it stands (captures and cancels start from it)."""
        try:
            row = await PaymentRows(self._pool).payment(payment_id=payment_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise not_found("payment_id", "payment with this id")
        return payment_from_row(row)

    async def get_by_key(self, *, key: str, payment_id: str, wait_s: float | None = None) -> Payment:
        """The payment of the tenant whose secret key this is, authenticated in the same query that reads
        it (one round trip: clients poll this route; 401 for an unknown or revoked key); with `wait_s`,
        once its status is final or after `wait_s` seconds."""
        key_hash = well_formed_key_hash(key)
        if key_hash is None:
            raise unauthorized(UNKNOWN_KEY)

        async def read() -> Payment:
            try:
                row = await PaymentRows(self._pool).payment_by_key(key_hash=key_hash, payment_id=payment_id)
            except DB_UNAVAILABLE as error:
                raise unavailable("PostgreSQL") from error
            if row is None:
                raise unauthorized(UNKNOWN_KEY)
            if row["id"] is None:
                raise not_found("payment_id", "payment with this id")
            return payment_from_row(row)

        if wait_s is None:
            return await read()
        with self._changes.watch(payment_id) if self._changes else contextlib.nullcontext() as changed:
            final = SETTLED_PAYMENT_STATUSES
            return await poll_until(read, done=lambda payment: payment.status in final, wait_s=wait_s, changed=changed)

    async def capture(self, *, tenant: Tenant, payment_id: str, request: PaymentCapture) -> Payment:
        """Captures an authorised payment, in full or in part; `processing` until the ledger posts it."""
        current = await self.get(tenant=tenant, payment_id=payment_id)
        if current.status != "requires_capture":
            raise not_capturable(current.status, VERBS["capture"])
        check_capture_amount(asked=request.amount, authorised=current.amount)
        return await self._act(tenant=tenant, current=current, action="capture", amount=request.amount)

    async def cancel(self, *, tenant: Tenant, payment_id: str) -> Payment:
        """Cancels an authorised payment (its reservation is released); `processing` until voided."""
        current = await self.get(tenant=tenant, payment_id=payment_id)
        if current.status != "requires_capture":
            raise not_capturable(current.status, VERBS["cancel"])
        return await self._act(tenant=tenant, current=current, action="cancel", amount=None)

    async def _act(self, *, tenant: Tenant, current: Payment, action: str, amount: int | None) -> Payment:
        """Records a capture or cancel, then publishes its request; undone when Kafka does not acknowledge."""
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection:
                rows = PaymentRows(connection)
                async with connection.transaction():
                    pending = await rows.payment(payment_id=current.id, tenant_id=tenant.id)
                    payer = await rows.account(account_id=current.payer, tenant_id=tenant.id)
                    assert pending is not None and payer is not None  # neither is ever deleted once answered
                    at, producer = request_time(payer, self._now())  # on the authorisation's test clock, if any
                    event = self._finishing_event(
                        action=action, pending_id=pending["request_event_id"], payer=current.payer, amount=amount,
                        at=at, producer=producer,
                    )  # fmt: skip
                    row = await rows.begin_action(
                        payment_id=current.id,
                        tenant_id=tenant.id,
                        request_event_id=event.event_id,
                        action=action,
                        amount=amount,
                    )
                if row is None:  # another capture or cancel, or an expiry, came first
                    latest = await rows.payment(payment_id=current.id, tenant_id=tenant.id)
                    raise not_capturable(latest["status"] if latest else current.status, VERBS[action])
                try:
                    await self._publish(event)
                except KAFKA_UNAVAILABLE as error:
                    async with connection.transaction():
                        await rows.undo_action(payment_id=current.id, request_event_id=event.event_id)
                    raise unavailable("Kafka") from error
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return payment_from_row(row)

    def _finishing_event(
        self, *, action: str, pending_id: uuid.UUID, payer: str, amount: int | None, at: datetime, producer: str
    ) -> PaymentPostRequested | PaymentVoidRequested:
        """The post (capture) or void (cancel) of the authorisation `pending_id`, in its flow, dated
        `at` by `producer` (the authorisation's own producer: its clock judges the capture)."""
        event_id = uuid.uuid4()
        if action == "capture":
            return PaymentPostRequested(
                event_id=event_id,
                occurred_at=at,
                producer=producer,
                correlation_id=pending_id,
                pending_id=pending_id,
                payer_account_id=payer,
                amount=amount,
            )
        return PaymentVoidRequested(
            event_id=event_id,
            occurred_at=at,
            producer=producer,
            correlation_id=pending_id,
            pending_id=pending_id,
            payer_account_id=payer,
        )
