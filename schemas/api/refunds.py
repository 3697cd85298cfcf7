"""`/v1/refunds`: pay (part of) a succeeded payment back, from its payee to its payer.

A refund's one `status` field moves as the ledger decides (the views consumer writes it):

    processing ──► succeeded   (the money is back with the payer; the payment's `amount_refunded` grows)
        └──────► failed        (`failure_code` is the ledger's result code, e.g. `exceeds_credits`
                                when the payee has spent the money; the amount is refundable again)

The payment itself stays `succeeded`, even when refunded in full: `amount_refunded` says how much
came back. The statuses are the ones the webhook events of issue 10 name (`refund.succeeded`,
`refund.failed`). `reason` is a fixed vocabulary (Stripe's), not free text, so nothing personal
can ride along in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api.money import Amount
from schemas.api.payments import PaymentId
from schemas.api.rows import Row

REFUND_ID_PREFIX: Final = "re_"

RefundStatus = Literal["processing", "succeeded", "failed"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
RefundId = str
# `?wait` returns once the status is one of these.
SETTLED_REFUND_STATUSES: Final[frozenset[str]] = frozenset({"succeeded", "failed"})


class RefundCreate(BaseModel):
    """Refunds `amount` paisa of a succeeded payment (all that is still refundable when omitted)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"payment": "pay_" + "1" * 32},
                {"payment": "pay_" + "1" * 32, "amount": 10000, "reason": "requested_by_customer"},
            ]
        },
    )

    payment: PaymentId = Field(max_length=40, description="The succeeded payment to refund, e.g. 'pay_3f9c…'.")
    amount: Amount | None = Field(
        default=None, description="Partial refund in paisa; omit to refund all that is still refundable."
    )
    reason: RefundReason | None = None


class Refund(BaseModel):
    """One refund of the tenant and where it stands (see the state diagram above)."""

    object: Literal["refund"] = "refund"
    id: RefundId = Field(description="The refund's id, e.g. 're_3f9c…'.")
    status: RefundStatus
    payment: PaymentId
    amount: int = Field(description="Paisa paid back to the payment's payer.")
    currency: Literal["PKR"] = "PKR"
    reason: RefundReason | None = None
    failure_code: str | None = Field(default=None, description="The ledger's result code when the refund failed.")
    failure_message: str | None = None
    created_at: datetime
    updated_at: datetime


def refund_from_row(row: Row) -> Refund:
    """The API's view of a stored refund (api_refunds, migration 0024)."""
    return Refund(
        id=row["id"],
        status=row["status"],
        payment=row["payment_id"],
        amount=row["amount"],
        reason=row["reason"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
