"""The ledger's own read form of the request events: msgspec structs, decoded in one pass of C.

The contract (schemas/) stays the pydantic models; this module reads the same JSON into lighter
values, because the ledger reads every request once on its hot path (pydantic's `validate_json`
and its serializer for the fingerprint cost about 8.5 µs of a payment's ~42; this path about 4).

**Never looser than the contract.** A message is taken on the fast path only if the struct
decodes it *and* `_checked` finds nothing the contract would refuse; anything else — a time
with an offset or more than six decimals, an account id the contract's pattern refuses, a
timeout on a non-pending payment, a lax form pydantic would coerce (`"5"` for 5) — returns None,
and the caller validates it with the contract's pydantic models (`from_model` then gives the
same struct). So every message is judged by the contract, and the fast path only ever agrees.
`tests/unit/test_ledger_wire.py` checks that: generated documents the fast path accepts are
accepted by pydantic with the same values and the same canonical bytes.

Each struct has the model's fields, in the model's order, with its defaults, so `canonical`
(msgspec's encoder) writes the bytes the contract's serializer writes: the request's fingerprint
is unchanged (a unit test compares every field, and the bytes, with the models).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, cast
from uuid import UUID

import msgspec

from schemas.cash import CashIn as CashInModel
from schemas.cash import CashOut as CashOutModel
from schemas.envelope import TOKEN_PATTERN, YEAR_MAX, YEAR_MIN
from schemas.money import AMOUNT_PAISA_MAX
from schemas.payments import PaymentKind, Rail
from schemas.payments import PaymentPostRequested as PostModel
from schemas.payments import PaymentRequested as PaymentModel
from schemas.payments import PaymentVoidRequested as VoidModel
from schemas.payments import RefundRequested as RefundModel

# Pydantic's `^…$` is Rust's regex, where `$` is the end of the text; Python's `$` also matches
# before a final newline, so the same pattern ends in `\Z` here.
_ACCOUNT_ID: Final = re.compile(TOKEN_PATTERN.removesuffix("$") + r"\Z")
# Account ids already found well-formed: a set lookup instead of a regex per id (ids repeat).
# Cleared when full, so it stays bounded whatever the stream holds.
KNOWN_ACCOUNT_IDS_MAX: Final = 1 << 16
_known_account_ids: set[str] = set()

Producer = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
AccountId = Annotated[str, msgspec.Meta(max_length=40)]  # the pattern: `_checked`
Paisa = Annotated[int, msgspec.Meta(gt=0, le=AMOUNT_PAISA_MAX)]
TimeoutSeconds = Annotated[int, msgspec.Meta(ge=0, le=90 * 86_400)]
OrderId = Annotated[str, msgspec.Meta(max_length=40)]
Reference = Annotated[str, msgspec.Meta(max_length=64)]


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """The contract's Envelope (schemas/envelope.py); each request adds its fields after these."""

    schema_version: Literal[1] = 1
    event_id: UUID
    occurred_at: datetime
    producer: Producer
    correlation_id: UUID


class PaymentRequested(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.requested"]  # required here: the contract's union needs the tag
    kind: PaymentKind
    rail: Rail
    payer_account_id: AccountId
    payee_account_id: AccountId
    amount: Paisa
    currency: Literal["PKR"] = "PKR"
    pending: bool = False
    timeout_seconds: TimeoutSeconds = 0
    order_id: OrderId | None = None
    reference: Reference | None = None


class PaymentPostRequested(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.post_requested"]
    pending_id: UUID
    payer_account_id: AccountId
    amount: Paisa | None = None


class PaymentVoidRequested(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.void_requested"]
    pending_id: UUID
    payer_account_id: AccountId


class RefundRequested(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.refund_requested"]
    payment_event_id: UUID
    payer_account_id: AccountId
    payee_account_id: AccountId
    amount: Paisa
    currency: Literal["PKR"] = "PKR"
    reference: Reference | None = None


class _AgentCash(_Envelope, frozen=True, kw_only=True):
    """schemas/cash.py's _AgentCash: the tag comes last, as in the contract's models."""

    customer_account_id: AccountId
    agent_account_id: AccountId
    amount: Paisa
    currency: Literal["PKR"] = "PKR"


class CashIn(_AgentCash, frozen=True, kw_only=True):
    event_type: Literal["cash.in"]


class CashOut(_AgentCash, frozen=True, kw_only=True):
    event_type: Literal["cash.out"]


RequestEvent = PaymentRequested | PaymentPostRequested | PaymentVoidRequested | CashIn | CashOut | RefundRequested
RequestModel = PaymentModel | PostModel | VoidModel | CashInModel | CashOutModel | RefundModel

# struct -> the contract's model it mirrors; the order is the order `read` tries them in
# (the most frequent first). The tag in the bytes only picks which to try: the struct checks it.
MODELS: Final[dict[type[RequestEvent], type[RequestModel]]] = {
    PaymentRequested: PaymentModel,
    CashIn: CashInModel,
    CashOut: CashOutModel,
    PaymentPostRequested: PostModel,
    PaymentVoidRequested: VoidModel,
    RefundRequested: RefundModel,
}
STRUCTS: Final[dict[type[RequestModel], type[RequestEvent]]] = {model: struct for struct, model in MODELS.items()}
_ACCOUNT_FIELDS: Final = {
    struct: tuple(name for name in struct.__struct_fields__ if name.endswith("_account_id")) for struct in MODELS
}
_DECODERS: Final = tuple(
    (f'"{model.model_fields["event_type"].default}"'.encode(), msgspec.json.Decoder(struct), struct)
    for struct, model in MODELS.items()
)
_ENCODER: Final = msgspec.json.Encoder()
# More than six decimals anywhere: pydantic truncates a time's seventh digit, msgspec rounds it.
_LONG_FRACTION: Final = re.compile(rb"\.[0-9]{7}")


def read(raw: bytes) -> RequestEvent | None:
    """The request in `raw`, or None when the contract's models must judge it (see the docstring)."""
    chosen = _decoder_for(raw)
    if chosen is None or _LONG_FRACTION.search(raw) is not None:
        return None
    decoder, struct = chosen
    try:
        event = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return event if _checked(event, _ACCOUNT_FIELDS[struct]) else None


def _decoder_for(raw: bytes) -> tuple[msgspec.json.Decoder[RequestEvent], type[RequestEvent]] | None:
    """The struct whose tag the bytes hold (a guess: the struct's own `event_type` checks it)."""
    for tag, decoder, struct in _DECODERS:
        if tag in raw:
            return cast("msgspec.json.Decoder[RequestEvent]", decoder), struct
    return None


def _checked(event: RequestEvent, account_fields: tuple[str, ...]) -> bool:
    """What the struct's types cannot say: a UTC time in range, well-formed account ids, the rules."""
    at = event.occurred_at
    if at.tzinfo is not UTC or not YEAR_MIN <= at.year <= YEAR_MAX:
        return False  # an offset the contract converts to UTC, or a time it refuses: pydantic decides
    for name in account_fields:
        account_id = getattr(event, name)
        if account_id not in _known_account_ids:
            if _ACCOUNT_ID.match(account_id) is None:
                return False
            if len(_known_account_ids) >= KNOWN_ACCOUNT_IDS_MAX:
                _known_account_ids.clear()
            _known_account_ids.add(account_id)
    # PaymentRequested's rule (schemas/payments.py, RULES): a timeout only on a pending payment.
    return not (type(event) is PaymentRequested and event.timeout_seconds and not event.pending)


def from_model(model: RequestModel) -> RequestEvent:
    """The struct of a request the contract's model validated (the path `read` declined)."""
    struct = STRUCTS[type(model)]
    return struct(**{name: getattr(model, name) for name in struct.__struct_fields__})  # type: ignore[no-any-return]


def canonical(event: RequestEvent) -> bytes:
    """The contract serializer's bytes for this request: its fields in the model's order."""
    return _ENCODER.encode(event)
