"""The dead-letter record: what could not be processed, why, and where it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeadLetterReason = Literal[
    "not_json",  # the bytes are not UTF-8 JSON
    "schema_invalid",  # JSON, but fails the event contract
    "unknown_event_type",  # well-formed, but no model for this event_type
    "unexpected_event_type",  # a known event on a topic that must not carry it
    "retries_exhausted",  # kept failing after the bounded number of retries
]


class DeadLetter(BaseModel):
    """One message set aside with its reason and original bytes (base64), never silently dropped."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    reason: DeadLetterReason
    detail: str = Field(max_length=2_000, description="Human-readable explanation of the failure.")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    consumer_group: str
    original_key_b64: str | None = None
    original_value_b64: str
    original_headers: list[tuple[str, str]] = Field(
        default=[],
        description="The original message's Kafka headers as (name, base64 value) pairs, in order.",
    )
    dead_lettered_at: datetime = Field(description="Wall-clock time of the decision (UTC).")
