"""Kafka messages of the requests topic into merge items: a request to decide, or poison."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from aiokafka.structs import ConsumerRecord
from pydantic import Field, TypeAdapter

from consumers.ledger.deadletter import Unreadable, read_event
from consumers.ledger.domain import Request, RequestEvent
from consumers.ledger.merge import Item
from schemas.topics import PAYMENT_REQUESTS

# Discriminated on event_type: pydantic validates one model, not every member of the union.
REQUEST_ADAPTER: Final = TypeAdapter(Annotated[RequestEvent, Field(discriminator="event_type")])
REQUEST_TYPES: Final = PAYMENT_REQUESTS.event_type_names


def fingerprint(raw: bytes) -> bytes:
    """A hash of the message bytes, to tell a redelivery (identical bytes) from a reused event id.

    `amount` is compared on its own first, so a changed amount reports `exists_with_different_amount`.
    """
    return hashlib.blake2b(raw, digest_size=16).digest()


@dataclass(slots=True)
class Poison:
    """A message that goes to the dead-letter topic instead of the ledger."""

    reason: str
    detail: str
    key: bytes | None
    value: bytes | None


def read_requests(
    partition: int, messages: Iterable[ConsumerRecord], last_at: datetime
) -> tuple[list[Item[Request | Poison]], datetime]:
    """Items in offset order, and the partition's latest `occurred_at` after them."""
    items: list[Item[Request | Poison]] = []
    for message in messages:
        event = read_event(message.value, REQUEST_ADAPTER, REQUEST_TYPES)
        if isinstance(event, Unreadable):
            payload: Request | Poison = Poison(event.reason, event.detail, message.key, message.value)
        else:
            payload = Request(event, partition, message.offset, fingerprint(message.value))
            last_at = max(last_at, event.occurred_at)
        # A poison message sorts with its predecessor, so it never waits for later events.
        items.append(Item(last_at, partition, message.offset, payload, message.value))
    return items, last_at
