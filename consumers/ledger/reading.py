"""Kafka messages of the requests topic into merge items: a request to decide, or poison."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from aiokafka.structs import ConsumerRecord
from pydantic import Field, TypeAdapter

from consumers.ledger import wire
from consumers.ledger.deadletter import Unreadable, read_event
from consumers.ledger.merge import Item
from consumers.ledger.records import Request, RequestEvent
from schemas.topics import PAYMENT_REQUESTS, TENANT_HEADER

# Discriminated on event_type: pydantic validates one model, not every member of the union.
REQUEST_ADAPTER: Final = TypeAdapter(Annotated[wire.RequestModel, Field(discriminator="event_type")])
REQUEST_TYPES: Final = PAYMENT_REQUESTS.event_type_names


def fingerprint(event: RequestEvent) -> bytes:
    """A hash of the request's canonical fields, to tell a retry from a reused event id.

    Taken over the parsed values re-serialised in the contract serializer's form (field order of
    the model, UTC times as `Z`, UUIDs, integers, defaults filled in; `wire.canonical`), never
    over the bytes a client sent: a retry re-serialised by another library (key order, `+00:00`
    for `Z`, defaults spelled out) is the same request. `amount` is compared on its own first, so
    a changed amount reports `exists_with_different_amount`; any other changed field
    `exists_with_different_fields`.
    """
    return hashlib.blake2b(wire.canonical(event), digest_size=16).digest()


def read_request(raw: bytes | None) -> RequestEvent | Unreadable:
    """The request in one message: the ledger's fast reader when it accepts it, else the
    contract's pydantic models, which judge everything the fast reader declines (wire.py)."""
    if raw is not None:
        event = wire.read(raw)
        if event is not None:
            return event
    model = read_event(raw, REQUEST_ADAPTER, REQUEST_TYPES)
    return model if isinstance(model, Unreadable) else wire.from_model(model)


@dataclass(slots=True)
class Poison:
    """A message that goes to the dead-letter topic instead of the ledger."""

    reason: str
    detail: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _tenant(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The sending tenant the gateway stamped, if any (the gateway alone may set the header)."""
    for name, value in headers or ():
        if name == TENANT_HEADER:
            return value.decode("ascii", "replace")
    return None


def read_requests(
    partition: int, messages: Iterable[ConsumerRecord], last_at: datetime
) -> tuple[list[Item[Request | Poison]], datetime]:
    """Items in offset order, and the partition's latest `occurred_at` after them."""
    items: list[Item[Request | Poison]] = []
    append = items.append
    for message in messages:
        value = message.value
        headers = message.headers  # aiokafka's sequence of (name, value), kept as it is
        offset = message.offset
        event = read_request(value)
        if isinstance(event, Unreadable):
            payload: Request | Poison = Poison(event.reason, event.detail, message.key, value, headers)
        else:
            payload = Request(event, partition, offset, fingerprint(event), _tenant(headers) if headers else None)
            if event.occurred_at > last_at:
                last_at = event.occurred_at
        # A poison message sorts with its predecessor, so it never waits for later events.
        append(Item(last_at, partition, offset, payload, value, message.key, headers))
    return items, last_at
