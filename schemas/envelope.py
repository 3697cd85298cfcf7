"""The envelope every event carries: identity, time, origin and causality.

`event_id` is the idempotency key: a consumer that sees the same id twice must produce the
same effect once. `occurred_at` is *simulated* time in UTC, so replays and expiry are
deterministic and never depend on the wall clock of the machine that reads them.

The published JSON Schema says everything the models enforce: times and UUIDs carry a `pattern`
(many validators treat `format` as a mere annotation), `event_type` is required (it selects the
model), and conditional rules (`RULES`, see schemas/rules.py) are `if`/`then` entries of `allOf`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.rules import Rule, rules_schema

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


UUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[UUID, Field(json_schema_extra={"pattern": UUID_PATTERN})]

# Event times lie in these UTC years: room for any simulation and for a pending transfer's
# expiry (up to 90 days later) without leaving Python's datetime range.
YEAR_MIN: Final = 1970
YEAR_MAX: Final = 2999

# RFC 3339 as both pydantic and JSON Schema validators read it: no leap second (23:59:60), no
# 24:00 offset, a 'T' between date and time. A regex cannot see the UTC year behind an offset,
# so the first and last year must be written in UTC; the years between take any offset.
_MONTH_DAY_TIME = r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
_YEARS_INSIDE = r"(197[1-9]|19[89][0-9]|2[0-8][0-9]{2}|29[0-8][0-9]|299[0-8])"  # YEAR_MIN+1 .. YEAR_MAX-1
_YEARS_EDGE = r"(1970|2999)"  # YEAR_MIN, YEAR_MAX
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
DATE_TIME_PATTERN: Final = f"^({_YEARS_INSIDE}{_MONTH_DAY_TIME}{_OFFSET}|{_YEARS_EDGE}{_MONTH_DAY_TIME}(Z|\\+00:00))$"


def _as_utc(value: datetime) -> datetime:
    """Normalises to UTC; refuses a time outside YEAR_MIN..YEAR_MAX (in UTC)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as error:  # 0001-01-01 east of Greenwich, 9999-12-31 west of it
        raise ValueError(f"time out of range: {error}") from error
    if not YEAR_MIN <= utc.year <= YEAR_MAX:
        raise ValueError(f"time out of range: years {YEAR_MIN}..{YEAR_MAX} (UTC)")
    return utc


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_as_utc),
    Field(
        json_schema_extra={
            "pattern": DATE_TIME_PATTERN,
            "$comment": f"UTC years {YEAR_MIN}..{YEAR_MAX}; the first and last written in UTC (Z or +00:00).",
        }
    ),
]


def _contract_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Publishes what validation adds to the field types: the event_type tag and the model's RULES."""
    if "event_type" in schema.get("properties", {}):
        schema["required"] = sorted({*schema.get("required", []), "event_type"})
    rules: tuple[Rule, ...] = getattr(model, "RULES", ())
    if rules:
        schema["allOf"] = rules_schema(model, rules)


class Envelope(BaseModel):
    """Fields shared by every event. Subclasses add `event_type` and their payload."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", str_strip_whitespace=False, json_schema_extra=_contract_schema
    )

    # Bump a subclass's SCHEMA_VERSION (and its `schema_version` literal) on any change that
    # an existing consumer could not read: a removed field, a new required field, a narrowed type.
    SCHEMA_VERSION: ClassVar[int] = 1
    # Conditional field rules (schemas/rules.py): a subclass that lists any calls `check_rules`
    # from a model_validator, so only events that have rules pay for the check.
    RULES: ClassVar[tuple[Rule, ...]] = ()

    schema_version: int = Field(default=1, ge=1, description="Version of this event type's schema.")
    event_id: Uuid = Field(description="Unique id of this event; the idempotency key.")
    occurred_at: UtcDatetime = Field(description="When it happened, in simulated UTC time.")
    producer: str = Field(min_length=1, max_length=64, description="Component that emitted it.")
    correlation_id: Uuid = Field(description="Id shared by every event of one business flow.")

    @property
    def partition_key(self) -> str:
        """The Kafka message key; every subclass names the account whose order must hold."""
        raise NotImplementedError
