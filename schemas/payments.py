"""Payment requests (commands to the ledger) and their outcomes (what the ledger decided).

Requests carry the payer's account as the partition key so one account's requests stay in
order. Every request ends as exactly one decision, published as `payment.settled` or
`payment.rejected`; an authorisation (pending payment) that times out also gets a
`payment.expired` outcome when the ledger expires it.

What to dedupe on: `event_id`. Every distinct outcome has its own id, derived from what it
answers (`outcome_event_id`, `expiry_outcome_event_id`), so an outcome re-published by the
ledger's at-least-once outbox carries the id it had, while a different answer to the same request
(an `exists` for a retry, an `exists_with_different_amount` for a conflicting one) is a new event.
`request_event_id` groups all outcomes of one request (for an expiry: the pending payment's id).
Outcome ids changed meaning in schema_version 2 (version 1 had one id per request, so a consumer
deduping on it lost the conflict rejections).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field, model_validator

from schemas.envelope import AccountId, Envelope, UtcDatetime, Uuid
from schemas.money import Currency, Paisa
from schemas.rules import Pins, Rule, check_rules

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
    "invalid_timestamp",  # dated too far ahead of its producer's clock (see docs/ledger.md)
    "payer_limit_exceeded",  # over a debit limit of the payer's wallet tier (schemas/accounts.py)
    "payee_limit_exceeded",  # over a credit limit or the balance cap of the payee's wallet tier
    "payer_not_owned",  # a tenant's own Kafka request debits an account that tenant does not own
]
RequestType = Literal[
    "payment.requested",
    "payment.post_requested",
    "payment.void_requested",
    "cash.in",
    "cash.out",
    "payment.refund_requested",
]
TransferStatus = Literal["posted", "pending", "voided", "expired"]

# Namespace for deriving outcome ids; fixed forever.
OUTCOME_NAMESPACE = UUID("6b8f8a52-3f0e-4c61-9a55-2d0f6f3b7a10")


_NAMESPACE_BYTES = OUTCOME_NAMESPACE.bytes


def _uuid5(name: str) -> UUID:
    """`uuid5(OUTCOME_NAMESPACE, name)`, computed the same way without its per-call overhead (this
    runs once per outcome on the ledger's hot path; a unit test pins it to `uuid.uuid5`)."""
    return UUID(bytes=hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16], version=5)


def outcome_event_id(request_event_id: UUID | str, result: str, fingerprint: bytes) -> UUID:
    """The event id of one decision about a request, the same however often it is published.

    `fingerprint` is the ledger's fingerprint of the request's canonical fields as received, so
    `created`, `exists`, `exists_with_different_amount` and each differently conflicting retry of
    one request id all get different ids.
    """
    return _uuid5(f"{request_event_id}/{result}/{fingerprint.hex()}")


def expiry_outcome_event_id(pending_id: UUID) -> UUID:
    """The event id of the `payment.expired` outcome of the pending payment `pending_id`."""
    return _uuid5(f"{pending_id}/expired")


class PaymentRequested(Envelope):
    """A payer asks to move money to a payee. `pending=True` only authorises (two-phase).

    `timeout_seconds` applies to a pending payment only: unless `pending` is true it must be 0
    (or left out); the JSON Schema says the same as an `if`/`then` rule (RULES).
    """

    RULES: ClassVar[tuple[Rule, ...]] = (
        Pins("pending", (False,), "timeout_seconds", 0, "'timeout_seconds' applies only when 'pending' is true"),
    )

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
        """A timeout only makes sense on a pending (two-phase) payment (RULES)."""
        check_rules(self, self.RULES)
        return self

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentPostRequested(Envelope):
    """Capture a pending payment, in full (amount omitted) or in part."""

    event_type: Literal["payment.post_requested"] = "payment.post_requested"
    schema_version: Literal[1] = 1
    pending_id: Uuid = Field(description="event_id of the pending payment.requested.")
    payer_account_id: AccountId
    amount: Paisa | None = Field(default=None, description="Partial capture; omit to post in full.")

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentVoidRequested(Envelope):
    """Release a pending payment without moving money (e.g. an order was cancelled)."""

    event_type: Literal["payment.void_requested"] = "payment.void_requested"
    schema_version: Literal[1] = 1
    pending_id: Uuid = Field(description="event_id of the pending payment.requested.")
    payer_account_id: AccountId

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class RefundRequested(Envelope):
    """Pays (part of) a succeeded payment back: the original payee pays the original payer.

    The ledger decides it exactly like a transfer from `payer_account_id` to `payee_account_id`
    (transfer code `refund`; wallet-tier limits apply); whoever publishes it checks first that the
    amount is still refundable — the ledger does not look the original payment up. Its outcome is
    the usual `payment.settled` / `payment.rejected` with `request_event_id` = this event's id.
    """

    event_type: Literal["payment.refund_requested"] = "payment.refund_requested"
    schema_version: Literal[1] = 1
    payment_event_id: Uuid = Field(description="event_id of the succeeded payment.requested being refunded.")
    payer_account_id: AccountId = Field(description="Who pays the refund back: the original payment's payee.")
    payee_account_id: AccountId = Field(description="Who gets it: the original payment's payer.")
    amount: Paisa
    currency: Currency = "PKR"
    reference: str | None = Field(default=None, max_length=64, description="Why, or the merchant's refund reference.")

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class _Outcome(Envelope):
    """What every outcome says about the request it answers."""

    request_event_id: Uuid = Field(description="The request answered; groups all outcomes of one request.")
    request_type: RequestType
    request_occurred_at: UtcDatetime
    payer_account_id: AccountId
    payee_account_id: AccountId | None = None
    amount: int = Field(ge=0, description="Paisa moved (settled), asked for (rejected) or released (expired).")
    currency: Currency = "PKR"
    kind: PaymentKind | None = None
    rail: Rail | None = None

    @property
    def partition_key(self) -> str:
        return self.payer_account_id


class PaymentSettled(_Outcome):
    """The ledger accepted the request; `status` says where the transfer now stands.

    Version 2: `event_id` is `outcome_event_id(request, result, fingerprint)`, one per distinct
    decision (version 1 had one id per request). Version 3: `request_type` may be
    `payment.refund_requested`. Version 2 events still parse (3 only widened an enum).
    """

    SCHEMA_VERSION: ClassVar[int] = 3
    event_type: Literal["payment.settled"] = "payment.settled"
    schema_version: Literal[2, 3] = 3
    result: SettledResult
    status: TransferStatus
    transfer_id: Uuid


class PaymentRejected(_Outcome):
    """The ledger refused the request; nothing moved. `result` says why.

    Version 2: one `event_id` per distinct decision (as for `payment.settled`), and the result
    code `invalid_timestamp`. Version 3: the result codes `payer_limit_exceeded` and
    `payee_limit_exceeded` (wallet-tier limits) and the request type `payment.refund_requested`.
    Version 4: the result code `payer_not_owned` (a tenant debiting an account it does not own,
    docs/security.md). Versions 2 and 3 still parse (3 and 4 only widened enums).
    """

    SCHEMA_VERSION: ClassVar[int] = 4
    event_type: Literal["payment.rejected"] = "payment.rejected"
    schema_version: Literal[2, 3, 4] = 4
    result: RejectedResult


class PaymentExpired(_Outcome):
    """A pending payment (authorisation) timed out on the simulated clock: its reservation is released.

    `request_event_id` is the pending `payment.requested`'s id, `occurred_at` the simulated time it
    expired, `transfer_id` the id of the expiry transfer; `event_id` is
    `expiry_outcome_event_id(request_event_id)`. A later post or void of it is rejected with
    `pending_transfer_expired`.
    """

    event_type: Literal["payment.expired"] = "payment.expired"
    schema_version: Literal[1] = 1
    request_type: Literal["payment.requested"]
    result: Literal["expired"]
    status: Literal["expired"]
    transfer_id: Uuid = Field(description="Id of the transfer that expired the reservation.")
