"""`/v1/payment_requests`: request-to-pay, as Raast offers it — the payee asks, the payer answers.

A request's one `status` field:

    pending ──approve──► approved   (a p2p payment payer → payee is made; `payment` names it)
        │   ──decline──► declined
        └──(expires_at passes)──► expired

A `pending` request whose `expires_at` has passed answers as `expired` at once, and is written
down as such by whichever comes first: the API's scheduler sweeping expired requests (within a
fraction of a second) or a read of it; either one records `payment_request.expired`, once.
The statuses are the ones the webhook events of issue 10 name (`payment_request.created`,
`.approved`, `.declined`, `.expired`). The payer's mobile number, when given, is only in the
request: the API resolves it through its keyed Raast alias and never stores or returns it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api.accounts import MSISDN_CHARS_MAX, ApiAccountId
from schemas.api.money import Amount
from schemas.api.payments import PaymentId
from schemas.api.rows import Row

PAYMENT_REQUEST_ID_PREFIX: Final = "pr_"
REQUEST_EXPIRES_IN_DEFAULT_S: Final = 86_400  # a day, unless the payee says otherwise
REQUEST_EXPIRES_IN_MAX_S: Final = 7 * 86_400
REFERENCE_CHARS_MAX: Final = 64  # the contract's bound on a payment's reference

PaymentRequestStatus = Literal["pending", "approved", "declined", "expired"]
PaymentRequestId = str


class PaymentRequestCreate(BaseModel):
    """Asks `payer` (an account id) or `payer_alias` (a mobile number, resolved to one of your
    accounts through its Raast alias; never stored) to pay `amount` paisa to `payee`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"payee": "acc_" + "2" * 32, "payer": "acc_" + "1" * 32, "amount": 25000, "reference": "INV-1042"},
                {"payee": "acc_" + "2" * 32, "payer_alias": "03451234567", "amount": 25000, "expires_in": 3600},
            ]
        },
    )

    payee: ApiAccountId = Field(description="Your account that asks to be paid.")
    payer: ApiAccountId | None = Field(default=None, description="The account asked to pay (or give `payer_alias`).")
    payer_alias: str | None = Field(
        default=None,
        min_length=1,
        max_length=MSISDN_CHARS_MAX,
        description="The payer's mobile number (its Raast alias); one of your accounts must hold it. Never stored.",
    )
    amount: Amount
    reference: str | None = Field(
        default=None, min_length=1, max_length=REFERENCE_CHARS_MAX, description="Your invoice or order reference."
    )
    expires_in: int = Field(
        default=REQUEST_EXPIRES_IN_DEFAULT_S,
        gt=0,
        le=REQUEST_EXPIRES_IN_MAX_S,
        description=f"Seconds the payer has to answer (default {REQUEST_EXPIRES_IN_DEFAULT_S}, at most "
        f"{REQUEST_EXPIRES_IN_MAX_S}).",
    )


class PaymentRequest(BaseModel):
    """One request-to-pay of the tenant and where it stands (see the state diagram above)."""

    object: Literal["payment_request"] = "payment_request"
    id: PaymentRequestId = Field(description="The request's id, e.g. 'pr_3f9c…'.")
    status: PaymentRequestStatus
    payee: ApiAccountId
    payer: ApiAccountId | None = Field(
        description="The payer's account; null when the payer was the magic value that declines at once."
    )
    amount: int = Field(description="The amount asked for, in paisa.")
    currency: Literal["PKR"] = "PKR"
    reference: str | None = None
    expires_at: datetime = Field(description="When a `pending` request becomes `expired`.")
    payment: PaymentId | None = Field(default=None, description="The payment made when it was approved.")
    created_at: datetime
    updated_at: datetime


def payment_request_from_row(row: Row) -> PaymentRequest:
    """The API's view of a stored request (api_payment_requests, migration 0024): what its GET answers
    and its webhook events carry as `data`."""
    return PaymentRequest(
        id=row["id"],
        status=row["status"],
        payee=row["payee"],
        payer=row["payer"],
        amount=row["amount"],
        reference=row["reference"],
        expires_at=row["expires_at"],
        payment=row["payment_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
