"""The whole event contract as one tagged union, plus parsing from Kafka bytes."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, TypeAdapter

from schemas.accounts import AccountOpened
from schemas.cash import CashIn, CashOut, CashPurchase
from schemas.commerce import OrderPaid, OrderPaidOnDelivery, OrderPlaced
from schemas.envelope import Envelope
from schemas.payments import (
    PaymentExpired,
    PaymentPostRequested,
    PaymentRejected,
    PaymentRequested,
    PaymentSettled,
    PaymentVoidRequested,
    RefundRequested,
)

EVENT_TYPES: Final[tuple[type[Envelope], ...]] = (
    AccountOpened,
    PaymentRequested,
    PaymentPostRequested,
    PaymentVoidRequested,
    RefundRequested,
    PaymentSettled,
    PaymentRejected,
    PaymentExpired,
    CashIn,
    CashOut,
    CashPurchase,
    OrderPlaced,
    OrderPaid,
    OrderPaidOnDelivery,
)

Event = Annotated[
    AccountOpened
    | PaymentRequested
    | PaymentPostRequested
    | PaymentVoidRequested
    | RefundRequested
    | PaymentSettled
    | PaymentRejected
    | PaymentExpired
    | CashIn
    | CashOut
    | CashPurchase
    | OrderPlaced
    | OrderPaid
    | OrderPaidOnDelivery,
    Field(discriminator="event_type"),
]

EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)


def event_type_name(model: type[Envelope]) -> str:
    """The `event_type` tag of a model class, e.g. 'payment.requested'."""
    default = model.model_fields["event_type"].default
    assert isinstance(default, str), model
    return default


EVENT_MODELS: Final[dict[str, type[Envelope]]] = {event_type_name(m): m for m in EVENT_TYPES}


def parse_event(raw: bytes | str) -> Event:
    """Parses one event from JSON. Raises pydantic.ValidationError on anything malformed."""
    return EVENT_ADAPTER.validate_json(raw)


def dump_event(event: Envelope) -> bytes:
    """Serialises one event to compact JSON bytes (the wire format)."""
    return event.model_dump_json().encode()
