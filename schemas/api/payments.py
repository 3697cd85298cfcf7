"""`/v1/payments` and `/v1/test_helpers/top_ups`: what a startup sends, and what it reads back.

A payment's one `status` field moves as the ledger decides (the views consumer, consumers/views,
writes it from the outcomes topic):

    processing ──► succeeded                      (automatic capture, settled)
        │      ──► failed                         (rejected: `failure_code` is the ledger's result code)
        └────► requires_capture ──capture──► processing ──► succeeded   (full or partial)
                      │          ──cancel───► processing ──► canceled
                      └──(expires_in passes)──► expired

Refunds (schemas/api/refunds.py) do not change a payment's status: a `succeeded` payment stays
`succeeded` however much of it is refunded, and `amount_refunded` counts what came back.

A top-up is `processing`, then `succeeded` or `failed`. The models here are the OpenAPI schema;
the status vocabulary and the failure messages are shared with the views consumer, so they live
in the contract package rather than in the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from schemas.api.accounts import MSISDN_CHARS_MAX, ApiAccountId
from schemas.api.money import Amount
from schemas.api.qr import PAYLOAD_CHARS_MAX as QR_PAYLOAD_CHARS_MAX
from schemas.api.rows import Row

PAYMENT_ID_PREFIX: Final = "pay_"
TOP_UP_ID_PREFIX: Final = "tu_"
EXPIRES_IN_DEFAULT_S: Final = 7 * 86_400  # an authorisation lives a week unless told otherwise
EXPIRES_IN_MAX_S: Final = 90 * 86_400  # the contract's bound on a pending payment's timeout
IBAN_CHARS_MAX: Final = 40  # 24 characters, and a space every four
WAIT_MAX_S: Final = 10.0  # GET …?wait=N: the longest a read may wait for a final status

PaymentStatus = Literal["processing", "requires_capture", "succeeded", "failed", "canceled", "expired"]
TopUpStatus = Literal["processing", "succeeded", "failed"]
# `?wait` returns once the status is one of these: nothing happens to them without a new request.
SETTLED_PAYMENT_STATUSES: Final[frozenset[str]] = frozenset(
    {"requires_capture", "succeeded", "failed", "canceled", "expired"}
)
SETTLED_TOP_UP_STATUSES: Final[frozenset[str]] = frozenset({"succeeded", "failed"})

ApiPaymentKind = Literal["p2p", "p2m", "bill", "ecommerce"]
CaptureMethod = Literal["automatic", "manual"]
PaymentId = str
TopUpId = str

# What each of the ledger's result codes means to the person paying (the `failure_message`).
FAILURE_MESSAGES: Final[dict[str, str]] = {
    "exceeds_credits": "the payer's balance is too low for this amount; top the account up and try again",
    "account_not_found": "the ledger does not know one of the accounts yet; retry once the account is open",
    "accounts_must_be_different": "the payer and the payee are the same account",
    "pending_transfer_not_found": "the ledger has no authorisation for this payment",
    "pending_transfer_already_posted": "the authorisation was captured already",
    "pending_transfer_already_voided": "the authorisation was canceled already",
    "pending_transfer_expired": "the authorisation expired before it was captured",
    "exceeds_pending_transfer_amount": "the capture is larger than the authorised amount",
    "exists_with_different_amount": "a request with this id and another amount was made before",
    "exists_with_different_fields": "a request with this id and other fields was made before",
    "invalid_timeout": "the authorisation's expiry is not acceptable",
    "invalid_timestamp": "the request was dated too far ahead of the ledger's clock",
    "payer_limit_exceeded": (
        "the payer's wallet tier does not allow this amount (per-transfer, daily, monthly or yearly limit);"
        " pay a smaller amount, wait for the next day or month, or upgrade the wallet's tier"
    ),
    "payee_limit_exceeded": (
        "the payee's wallet tier cannot receive this amount (an incoming limit or its maximum balance);"
        " pay a smaller amount or ask the payee to upgrade the wallet's tier"
    ),
    "payer_not_owned": "the payer account belongs to another tenant; pay only from your own accounts",
    "timed_out": "nothing answered the payment in time (the no-answer magic value); no money moved",
}
FAILURE_MESSAGE_DEFAULT: Final = "the ledger refused the request"


def failure_message(code: str) -> str:
    """The human message of one of the ledger's result codes."""
    return FAILURE_MESSAGES.get(code, FAILURE_MESSAGE_DEFAULT)


def _no_default(schema: dict[str, Any]) -> None:
    """Documents an optional field without its `null` default (null itself is refused)."""
    schema.pop("default", None)


class PaymentCreate(BaseModel):
    """Pays `amount` paisa from `payer` to exactly one of: `payee` (an account id), `payee_alias` (a
    mobile number, resolved to one of your accounts through its Raast alias; never stored),
    `payee_iban` (one of your bank accounts' IBAN) or `qr` (a QR payload of one of your merchants)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"payer": "acc_" + "1" * 32, "payee": "acc_" + "2" * 32, "amount": 25000},
                {"payer": "acc_" + "1" * 32, "payee_alias": "03451234567", "amount": 25000, "kind": "p2p"},
                {"payer": "acc_" + "1" * 32, "payee_iban": "PK09 SBOX 0000 0012 3456 7890", "amount": 25000},
                {
                    "payer": "acc_" + "1" * 32,
                    "payee": "acc_" + "3" * 32,
                    "amount": 150000,
                    "kind": "ecommerce",
                    "capture_method": "manual",
                    "expires_in": 86400,
                },
            ]
        },
    )

    payer: ApiAccountId
    payee: ApiAccountId | None = Field(default=None, description="The payee's account id (or give `payee_alias`).")
    payee_alias: str | None = Field(
        default=None,
        min_length=1,
        max_length=MSISDN_CHARS_MAX,
        description="The payee's mobile number (its Raast alias); one of your accounts must hold it. Never stored.",
    )
    payee_iban: str | None = Field(
        default=None,
        min_length=1,
        max_length=IBAN_CHARS_MAX,
        description="The payee's IBAN (PK…, spaces allowed); one of your bank accounts must hold it.",
    )
    qr: str | None = Field(
        default=None,
        min_length=1,
        max_length=QR_PAYLOAD_CHARS_MAX,
        description="A QR payload (POST /v1/qr_codes): pays its merchant, `kind` p2m. A dynamic code sets the "
        "amount and is paid once; a static one needs `amount`.",
    )
    # Optional only for a dynamic QR code, which carries its own; an explicit null is refused.
    amount: Amount | SkipJsonSchema[None] = Field(
        default=None,
        description="Paisa, a JSON integer; required unless `qr` is a dynamic code.",
        json_schema_extra=_no_default,
    )
    kind: ApiPaymentKind = "p2p"
    capture_method: CaptureMethod = Field(
        default="automatic", description="`manual` only authorises: capture or cancel it later."
    )
    expires_in: int | None = Field(
        default=None,
        gt=0,
        le=EXPIRES_IN_MAX_S,
        description=f"Manual capture only: seconds until the authorisation expires (default {EXPIRES_IN_DEFAULT_S}).",
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an integer count of paisa; leave it out only to pay a dynamic QR code")
        return value


class PaymentCapture(BaseModel):
    """Captures an authorised payment: all of it, or `amount` paisa of it (the rest is released)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Amount | None = Field(default=None, description="Partial capture; omit to capture the whole amount.")


class Payment(BaseModel):
    """One payment of the tenant and where it stands (see the state diagram in the API's docs)."""

    object: Literal["payment"] = "payment"
    id: PaymentId = Field(description="The payment's id, e.g. 'pay_3f9c…'.")
    status: PaymentStatus
    payer: ApiAccountId
    payee: ApiAccountId
    amount: int = Field(description="The amount asked for, in paisa.")
    amount_captured: int = Field(description="Paisa moved to the payee (less than `amount` after a partial capture).")
    amount_refunded: int = Field(
        description="Paisa paid back by succeeded refunds. A payment refunded in full stays `succeeded`: this "
        "field, equal to `amount_captured` then, says so."
    )
    currency: Literal["PKR"] = "PKR"
    kind: ApiPaymentKind
    capture_method: CaptureMethod
    expires_at: datetime | None = Field(default=None, description="Manual capture: when the authorisation expires.")
    failure_code: str | None = Field(default=None, description="The ledger's result code when a request failed.")
    failure_message: str | None = None
    created_at: datetime
    updated_at: datetime


class TopUpCreate(BaseModel):
    """Pays `amount` paisa into one of your accounts, as cash handed to a sandbox agent."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"account": "acc_" + "1" * 32, "amount": 500000}]},
    )

    account: ApiAccountId
    amount: Amount


class TopUp(BaseModel):
    """A cash-in at the tenant's sandbox agent: `processing` until the ledger decides."""

    object: Literal["top_up"] = "top_up"
    id: TopUpId = Field(description="The top-up's id, e.g. 'tu_3f9c…'.")
    status: TopUpStatus
    account: ApiAccountId
    amount: int
    currency: Literal["PKR"] = "PKR"
    failure_code: str | None = None
    failure_message: str | None = None
    created_at: datetime
    updated_at: datetime


def payment_from_row(row: Row) -> Payment:
    """The API's view of a stored payment (api_payments, migration 0022)."""
    return Payment(
        id=row["id"],
        status=row["status"],
        payer=row["payer"],
        payee=row["payee"],
        amount=row["amount"],
        amount_captured=row["amount_captured"],
        amount_refunded=row["amount_refunded"],
        kind=row["kind"],
        capture_method=row["capture_method"],
        expires_at=row["expires_at"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def top_up_from_row(row: Row) -> TopUp:
    """The API's view of a stored top-up (api_top_ups)."""
    return TopUp(
        id=row["id"],
        status=row["status"],
        account=row["account"],
        amount=row["amount"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
