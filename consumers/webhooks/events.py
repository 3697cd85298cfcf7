"""From a status change the views consumer applied to the webhook events it announces. Pure: no I/O.

| object  | status it reached                                           | event(s)                               |
|---------|-------------------------------------------------------------|----------------------------------------|
| payment | succeeded, failed, requires_capture, canceled, expired      | `payment.<status>`                     |
| refund  | succeeded                                                   | `refund.succeeded`, `payment.refunded` |
| refund  | failed                                                      | `refund.failed`                        |
| top_up  | succeeded                                                   | `top_up.succeeded`                     |
| top_up  | failed                                                      | none (no such event type yet)          |

A capture the ledger refused puts the payment back to `requires_capture` (with `failure_code`), so
`payment.requires_capture` is sent again then: `data.failure_code` tells the two apart.

`data` is the object as the API's GET of it answers, built here from its row with the API's own
response models (schemas/api), so the two cannot drift apart without a test noticing; the arrow
points down (consumers → schemas), never into producers/api.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from schemas.api.payments import Payment, TopUp, payment_from_row, top_up_from_row
from schemas.api.refunds import Refund, refund_from_row
from schemas.webhooks import WEBHOOK_EVENT_TYPES, WebhookEventType

ObjectKind = Literal["payment", "refund", "top_up"]

PAYMENT_EVENT_STATUSES: Final = frozenset({"succeeded", "failed", "requires_capture", "canceled", "expired"})


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event to record: its type, and which object's current row becomes its `data`."""

    type: WebhookEventType
    object_kind: ObjectKind
    object_id: str


def _type(name: str) -> WebhookEventType:
    """`name` as an event type; a ValueError when schemas/webhooks.py does not list it."""
    for known in WEBHOOK_EVENT_TYPES:
        if known == name:
            return known
    raise ValueError(f"{name!r} is not an event type in schemas/webhooks.py; add it there first")


def events_for(*, kind: ObjectKind, object_id: str, status: str, payment_id: str | None = None) -> list[EventSpec]:
    """The events a change of `kind` `object_id` to `status` announces (see the module's table).
    `payment_id` is a refund's payment, whose `payment.refunded` follows a succeeded refund."""
    if kind == "payment":
        return [EventSpec(_type(f"payment.{status}"), "payment", object_id)] if status in PAYMENT_EVENT_STATUSES else []
    if kind == "refund":
        events = (
            [EventSpec(_type(f"refund.{status}"), "refund", object_id)] if status in ("succeeded", "failed") else []
        )
        if status == "succeeded" and payment_id is not None:
            events.append(EventSpec("payment.refunded", "payment", payment_id))
        return events
    return [EventSpec("top_up.succeeded", "top_up", object_id)] if status == "succeeded" else []


def object_data(kind: ObjectKind, row: Mapping[str, Any]) -> dict[str, Any]:
    """The object of `row` as the API's GET answers it (the same functions build both), as JSON-ready values."""
    model: Payment | Refund | TopUp
    if kind == "payment":
        model = payment_from_row(row)
    elif kind == "refund":
        model = refund_from_row(row)
    else:
        model = top_up_from_row(row)
    return model.model_dump(mode="json")
