"""Reading one Kafka message into an event, or into the reason it must go to the dead-letter topic."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple, TypeVar

from pydantic import TypeAdapter, ValidationError

from schemas.deadletter import DeadLetter, DeadLetterReason
from schemas.events import EVENT_MODELS

DETAIL_CHARS_MAX: Final = 2_000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message no rule can decide: why, in the dead-letter topic's vocabulary."""

    reason: DeadLetterReason
    detail: str


def read_event(raw: bytes | None, adapter: TypeAdapter[T], allowed: tuple[str, ...]) -> T | Unreadable:
    """Parses with the topic's own adapter (one pass); classifies the failure only when it fails."""
    if raw is None:
        return Unreadable("not_json", "the message has no value (a tombstone)")
    try:
        return adapter.validate_json(raw)
    except ValidationError as error:
        return _classify(raw, error, allowed)


def _classify(raw: bytes, error: ValidationError, allowed: tuple[str, ...]) -> Unreadable:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as bad:
        return Unreadable("not_json", f"not UTF-8 JSON: {bad}"[:DETAIL_CHARS_MAX])
    event_type = document.get("event_type") if isinstance(document, dict) else None
    if not isinstance(event_type, str):
        return Unreadable("schema_invalid", "not a JSON object with a string 'event_type'")
    if event_type not in EVENT_MODELS:
        return Unreadable("unknown_event_type", f"no model for event_type '{event_type}'"[:DETAIL_CHARS_MAX])
    if event_type not in allowed:
        detail = f"'{event_type}' does not belong on this topic (allowed: {', '.join(allowed)})"
        return Unreadable("unexpected_event_type", detail[:DETAIL_CHARS_MAX])
    return Unreadable("schema_invalid", str(error)[:DETAIL_CHARS_MAX])


Headers = tuple[tuple[str, bytes], ...]


class Letter(NamedTuple):
    """One dead-letter record as it goes onto the dead-letter topic: the original key and headers."""

    key: bytes | None
    headers: Headers
    value: bytes  # the DeadLetter record, JSON
    reason: str = ""  # its DeadLetterReason, for counting
    topic: str | None = None  # None: the dead-letter topic; else a tenant's outcomes topic (a copy)


def letters_to_json(letters: list[Letter]) -> str | None:
    """The outbox column's form (None when there are none): keys and header values in base64."""
    if not letters:
        return None
    return json.dumps(
        [
            {
                "key": None if letter.key is None else _b64(letter.key),
                "headers": [[name, _b64(value)] for name, value in letter.headers],
                "value": letter.value.decode(),
                "reason": letter.reason,
                "topic": letter.topic,
            }
            for letter in letters
        ]
    )


def letters_from_json(text: str | None) -> list[Letter]:
    """The inverse of `letters_to_json`."""
    if not text:
        return []
    return [
        Letter(
            None if entry["key"] is None else base64.b64decode(entry["key"]),
            tuple((name, base64.b64decode(value)) for name, value in entry["headers"]),
            entry["value"].encode(),
            entry.get("reason", ""),
            entry.get("topic"),
        )
        for entry in json.loads(text)
    ]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def dead_letter(
    *,
    reason: DeadLetterReason,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    group: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers = (),
    now: datetime,
) -> Letter:
    """The dead-letter record for one message, keyed and headed as the original; `now` is wall-clock UTC."""
    record = DeadLetter(
        reason=reason,
        detail=detail[:DETAIL_CHARS_MAX],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        consumer_group=group,
        original_key_b64=base64.b64encode(key).decode() if key is not None else None,
        original_value_b64=base64.b64encode(value or b"").decode(),
        original_headers=[(name, _b64(raw)) for name, raw in headers],
        dead_lettered_at=now,
    )
    return Letter(key, headers, record.model_dump_json().encode(), reason)
