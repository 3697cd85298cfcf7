"""Refunds through the API (issue 9, item 4): a succeeded payment paid back, in full or in part.

Refunding: lock the tenant's payment → check it is `succeeded` and that the amount is still
refundable (`check_refundable`: what was captured less every refund that has not failed) → store the
refund `processing` and reserve its amount on the payment, in that one transaction, and commit →
publish its `payment.refund_requested` (keyed by its payer: the payment's payee, who pays the money
back) and wait for Kafka's acknowledgement. The row is committed *before* the publish so the views
consumer always finds it when the ledger's outcome arrives; when Kafka does not acknowledge, the
refund is deleted, its reservation released, and the client gets a 503.

The reservation is what makes concurrent refunds safe: the payment's row is locked while its
reservation is read and raised, so two refunds racing for the last rupee are decided one after the
other, and a CHECK in the database (migration 0024) refuses a reservation above the captured amount.
The views consumer settles it: a refund that succeeds adds to the payment's `amount_refunded`; one
that fails gives its amount back to the refundable rest.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg

from producers.api.accounts import PRODUCER
from producers.api.polling import poll_until
from producers.api.problems import ApiError
from producers.api.refund_rows import RefundRows
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.api.refunds import REFUND_ID_PREFIX, SETTLED_REFUND_STATUSES, Refund, RefundCreate, refund_from_row
from schemas.envelope import Envelope
from schemas.payments import RefundRequested

REFUND_ID_RANDOM_BYTES: Final = 16
REFUNDABLE_STATUS: Final = "succeeded"

Publish = Callable[[Envelope], Awaitable[None]]
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def not_refundable(detail: str) -> ApiError:
    """The 409 for a refund of a payment that cannot take one."""
    return ApiError(status=409, code="payment_not_refundable", detail=detail, param="payment")


def check_refundable(*, status: str, captured: int, reserved: int, asked: int | None) -> int:
    """The amount to refund: `asked`, or (None) all that is still refundable — the captured amount
    less `reserved`, the refunds that have not failed. 409 when the payment is not `succeeded` or
    nothing is left; 422 when `asked` is more than is left."""
    if status != REFUNDABLE_STATUS:
        raise not_refundable(f"only a `succeeded` payment can be refunded; this one is `{status}`")
    refundable = captured - reserved
    assert refundable >= 0, (captured, reserved)  # the database's CHECK holds this too
    if refundable == 0:
        raise not_refundable(
            "this payment is refunded in full (counting refunds still processing); nothing is left to refund"
        )
    if asked is None:
        return refundable
    if asked > refundable:
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail=f"at most {refundable} paisa of this payment can still be refunded; ask for that much or less",
            param="amount",
        )
    return asked


class Refunds:
    """Refunds a tenant's payments, and reads the refunds back."""

    def __init__(self, *, pool: asyncpg.Pool, publish: Publish, now: Clock = _wall_clock) -> None:
        self._pool = pool
        self._publish = publish
        self._now = now

    async def create(self, *, tenant: Tenant, request: RefundCreate) -> Refund:
        """Stores, reserves and publishes a refund (see the module's docstring); `processing`."""
        refund_id = REFUND_ID_PREFIX + secrets.token_hex(REFUND_ID_RANDOM_BYTES)
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection:
                rows = RefundRows(connection)
                async with connection.transaction():
                    payment = await rows.lock_payment(payment_id=request.payment, tenant_id=tenant.id)
                    if payment is None:
                        raise ApiError(
                            status=404, code="not_found", detail="you have no payment with this id", param="payment"
                        )
                    amount = check_refundable(
                        status=payment["status"],
                        captured=payment["amount_captured"],
                        reserved=payment["amount_refund_reserved"],
                        asked=request.amount,
                    )
                    event = self._event(payment, amount=amount, refund_id=refund_id)
                    row = await rows.insert_reserved(
                        refund_id=refund_id,
                        tenant_id=tenant.id,
                        payment_id=payment["id"],
                        request_event_id=event.event_id,
                        amount=amount,
                        reason=request.reason,
                    )
                try:
                    await self._publish(event)
                except KAFKA_UNAVAILABLE as error:  # no refund without its request
                    await rows.undo(refund_id=refund_id)
                    raise unavailable("Kafka") from error
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return refund_from_row(row)

    def _event(self, payment: asyncpg.Record, *, amount: int, refund_id: str) -> RefundRequested:
        """The refund's request to the ledger: the payment's payee pays `amount` back to its payer.
        It is in the payment's flow (its correlation id) and names the refund as its reference."""
        return RefundRequested(
            event_id=uuid.uuid4(),
            occurred_at=self._now(),
            producer=PRODUCER,
            correlation_id=payment["request_event_id"],
            payment_event_id=payment["request_event_id"],
            payer_account_id=payment["payee"],
            payee_account_id=payment["payer"],
            amount=amount,
            reference=refund_id,
        )

    async def get(self, *, tenant: Tenant, refund_id: str, wait_s: float | None = None) -> Refund:
        """The tenant's refund; with `wait_s`, once it is final or after `wait_s` seconds."""

        async def read() -> Refund:
            try:
                row = await RefundRows(self._pool).refund(refund_id=refund_id, tenant_id=tenant.id)
            except DB_UNAVAILABLE as error:
                raise unavailable("PostgreSQL") from error
            if row is None:
                raise ApiError(
                    status=404, code="not_found", detail="you have no refund with this id", param="refund_id"
                )
            return refund_from_row(row)

        if wait_s is None:
            return await read()
        return await poll_until(read, done=lambda refund: refund.status in SETTLED_REFUND_STATUSES, wait_s=wait_s)
