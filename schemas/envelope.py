"""The envelope every event carries: identity, time, origin and causality.

`event_id` is the idempotency key: a consumer that sees the same id twice must produce the
same effect once. `occurred_at` is *simulated* time in UTC, so replays and expiry are
deterministic and never depend on the wall clock of the machine that reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Opaque, tokenised identifiers. They never carry a CNIC or phone number in clear.
TOKEN_PATTERN = r"^[a-z]{2,4}_[0-9a-f]{8,32}$"

AccountId = Annotated[
    str,
    Field(
        pattern=TOKEN_PATTERN,
        max_length=40,
        description="Tokenised ledger account id, e.g. 'acc_3f9c0a1b2c3d4e5f'.",
    ),
]
HolderToken = Annotated[
    str,
    Field(
        pattern=TOKEN_PATTERN,
        max_length=40,
        description="Tokenised id of a person or business (derived from, never equal to, a CNIC/NTN).",
    ),
]


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class Envelope(BaseModel):
    """Fields shared by every event. Subclasses add `event_type` and their payload."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    # Bump a subclass's SCHEMA_VERSION (and its `schema_version` literal) on any change that
    # an existing consumer could not read: a removed field, a new required field, a narrowed type.
    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int = Field(default=1, ge=1, description="Version of this event type's schema.")
    event_id: UUID = Field(description="Unique id of this event; the idempotency key.")
    occurred_at: UtcDatetime = Field(description="When it happened, in simulated UTC time.")
    producer: str = Field(min_length=1, max_length=64, description="Component that emitted it.")
    correlation_id: UUID = Field(description="Id shared by every event of one business flow.")

    @property
    def partition_key(self) -> str:
        """The Kafka message key; every subclass names the account whose order must hold."""
        raise NotImplementedError
