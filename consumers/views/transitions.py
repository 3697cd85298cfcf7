"""From one ledger outcome to the status change of the API object it answers. Pure: no I/O, no clock.

What an outcome answers (`Target`) is found by its `request_event_id`: a payment's own
`payment.requested`, a capture's `payment.post_requested`, a cancel's `payment.void_requested`,
a top-up's `cash.in` or a refund's `payment.refund_requested`. The change it makes:

| request   | settled                                  | rejected                                   | expired  |
|-----------|------------------------------------------|--------------------------------------------|----------|
| payment   | posted → succeeded, pending →            | failed, failure_code = the result code     | expired  |
|           | requires_capture, voided → canceled      |                                            |          |
| capture   | posted → succeeded (amount_captured)     | back to requires_capture, or expired /     |          |
| cancel    | voided → canceled                        | canceled / succeeded when the authorisation |          |
|           |                                          | already ended so                           |          |
| top-up    | succeeded                                | failed, failure_code = the result code     |          |
| refund    | succeeded (the payment's amount_refunded | failed, failure_code = the result code     |          |
|           | grows; the payment stays succeeded)      | (the payment's reservation is released)    |          |

A change to a payment applies only while the payment still awaits that very request
(`awaited`), so an outcome delivered twice, or late, never moves a payment backwards; an expiry
applies to any authorisation not yet ended (`awaited` is None). A top-up or refund changes only
while it is `processing`, so its outcome delivered twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from uuid import UUID

from schemas.api.payments import failure_message
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled

Outcome = PaymentSettled | PaymentRejected | PaymentExpired
Action = Literal["payment", "capture", "cancel", "top_up", "refund"]
Table = Literal["payment", "top_up", "refund"]

# Where a settled transfer stands → the payment's status.
SETTLED_STATUSES: Final[dict[str, str]] = {
    "posted": "succeeded",
    "pending": "requires_capture",
    "voided": "canceled",
    "expired": "expired",
}
# A capture or cancel the ledger refused because the authorisation had already ended: the
# payment takes the state it ended in. Any other refusal leaves it capturable.
ENDED_AUTHORISATION_STATUSES: Final[dict[str, str]] = {
    "pending_transfer_expired": "expired",
    "pending_transfer_already_voided": "canceled",
    "pending_transfer_already_posted": "succeeded",
}


@dataclass(frozen=True, slots=True)
class Target:
    """The API object an outcome's request belongs to, and which of its requests it was."""

    action: Action
    object_id: str


@dataclass(frozen=True, slots=True)
class Change:
    """A new status for one row of api_payments, api_top_ups or api_refunds."""

    table: Table
    object_id: str
    status: str
    awaited: UUID | None  # applies only while the row awaits this request (None: an expiry)
    amount_captured: int | None = None  # None: unchanged
    failure_code: str | None = None

    @property
    def failure_message(self) -> str | None:
        """The human message of `failure_code`."""
        return None if self.failure_code is None else failure_message(self.failure_code)


def change_for(outcome: Outcome, target: Target) -> Change:
    """The status change `outcome` makes to `target` (see the module's table)."""
    request = outcome.request_event_id
    if target.action in ("top_up", "refund"):
        table: Table = "top_up" if target.action == "top_up" else "refund"
        if isinstance(outcome, PaymentSettled):
            return Change(table, target.object_id, "succeeded", request)
        return Change(table, target.object_id, "failed", request, failure_code=outcome.result)
    if isinstance(outcome, PaymentExpired):
        return Change("payment", target.object_id, "expired", None)
    if isinstance(outcome, PaymentSettled):
        status = SETTLED_STATUSES[outcome.status]
        captured = outcome.amount if status == "succeeded" else None
        return Change("payment", target.object_id, status, request, amount_captured=captured)
    if target.action == "payment":
        return Change("payment", target.object_id, "failed", request, failure_code=outcome.result)
    status = ENDED_AUTHORISATION_STATUSES.get(outcome.result, "requires_capture")
    return Change("payment", target.object_id, status, request, failure_code=outcome.result)
