"""Payment requests (commands to the ledger) and their outcomes (what the ledger decided).

Requests carry the payer's account as the partition key so one account's requests stay in
order. Every request ends as exactly one outcome: `payment.settled` or `payment.rejected`.
Outcome event ids are derived from the request id (see `outcome_event_id`), so a consumer
that sees an outcome twice (the ledger's outbox is at-least-once) can drop the second copy.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid5

from pydantic import Field, model_validator

from schemas.envelope import AccountId, Envelope, UtcDatetime
from schemas.money import Currency, Paisa

PaymentKind = Literal[
    "p2p",  # person to person, usually by Raast alias
    "p2m_static_qr",
    "p2m_dynamic_qr",
    "bill_payment",
    "ecommerce",  # an e-commerce order paid online (authorise at order, capture at dispatch)
    "wage",
    "g2p",  # government-to-person disbursement (e.g. BISP)
    "request_to_pay",
]
Rail = Literal["raast", "wallet", "card", "bank"]

# Expected outcomes are result codes, not exceptions (TigerBeetle's vocabulary).
SettledResult = Literal["created", "exists"]
RejectedResult = Literal[
    "exists_with_different_amount",
    "exists_with_different_fields",
    "account_not_found",
    "accounts_must_be_different",
    "exceeds_credits",
    "pending_transfer_not_found",
    "pending_transfer_already_posted",
    "pending_transfer_already_voided",
    "pending_transfer_expired",
    "exceeds_pending_transfer_amount",
    "invalid_timeout",
]
RequestType = Literal[
    "payment.requested",
    "payment.post_requested",
    "payment.void_requested",
    "cash.in",
    "cash.out",
]
TransferStatus = Literal["posted", "pending", "voided", "expired"]

# Namespace for deriving outcome ids from request ids; fixed forever.
OUTCOME_NAMESPACE = UUID("6b8f8a52-3f0e-4c61-9a55-2d0f6f3b7a10")


def outcome_event_id(request_event_id: UUID) -> UUID:
    """The one event id every outcome of this request carries, however often it is published."""
    return uuid5(OUTCOME_NAMESPACE, str(request_event_id))


class PaymentRequested(Envelope):
    """A payer asks to move money to a payee. `pending=True` only authorises (two-phase)."""

    event_type: Literal["payment.requested"] = "payment.requested"
    schema_version: Literal[1] = 1
    kind: PaymentKind
    rail: Rail
    payer_account_id: AccountId
    payee_account_id: AccountId
    amount: Paisa
    currency: Currency = "PKR"
    pending: bool = Field(default=False, description="Authorise only; post or void later.")
    timeout_seconds: int = Field(
        default=0, ge=0, le=90 * 86_400, description="Pending only: expire after this much simulated time."
    )
    order_id: str | None = Field(default=None, max_length=40, description="E-commerce order, if any.")
    reference: str | None = Field(default=None, max_length=64, description="Bill or invoice reference.")

    @model_validator(mode="after")
    def check_timeout(self) -> PaymentRequested:
        """A timeout only makes sense on a pending (two-phase) payment."""
        if self.timeout_seconds and not self.pending:
            raise ValueError("'timeout_seconds' applies only when 'pending' is true")
        return self

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentPostRequested(Envelope):
    """Capture a pending payment, in full (amount omitted) or in part."""

    event_type: Literal["payment.post_requested"] = "payment.post_requested"
    schema_version: Literal[1] = 1
    pending_id: UUID = Field(description="event_id of the pending payment.requested.")
    payer_account_id: AccountId
    amount: Paisa | None = Field(default=None, description="Partial capture; omit to post in full.")

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentVoidRequested(Envelope):
    """Release a pending payment without moving money (e.g. an order was cancelled)."""

    event_type: Literal["payment.void_requested"] = "payment.void_requested"
    schema_version: Literal[1] = 1
    pending_id: UUID = Field(description="event_id of the pending payment.requested.")
    payer_account_id: AccountId

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class _Outcome(Envelope):
    """What both outcomes say about the request they answer."""

    request_event_id: UUID
    request_type: RequestType
    request_occurred_at: UtcDatetime
    payer_account_id: AccountId
    payee_account_id: AccountId | None = None
    amount: int = Field(ge=0, description="Paisa moved (settled) or asked for (rejected).")
    currency: Currency = "PKR"
    kind: PaymentKind | None = None
    rail: Rail | None = None

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentSettled(_Outcome):
    """The ledger accepted the request; `status` says where the transfer now stands."""

    event_type: Literal["payment.settled"] = "payment.settled"
    schema_version: Literal[1] = 1
    result: SettledResult
    status: TransferStatus
    transfer_id: UUID


class PaymentRejected(_Outcome):
    """The ledger refused the request; nothing moved. `result` says why."""

    event_type: Literal["payment.rejected"] = "payment.rejected"
    schema_version: Literal[1] = 1
    result: RejectedResult
