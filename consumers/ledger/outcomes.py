"""Outcome events: what the ledger tells the world about each request it decided, and each expiry.

Written without the pydantic models: this runs once per request on the hot path. A decision is
encoded by msgspec from a struct with exactly the contract's fields (UUIDs and UTC times as the
contract's serializer writes them, `Z`; `event_type` second, as this module always wrote it). An
expiry, which is rare, comes from a string template whose every value is a UUID, an integer, an
ISO-8601 time or a string the contract already constrained to `[a-z0-9_.]`. A unit test proves
every outcome parses back into the contract's models.

Ids (see schemas/payments.py): a decision's `event_id` is derived from the request id, the result
and the request's fingerprint, an expiry's from the pending id. A republished outcome (outbox
redelivery) keeps its id; a different answer to the same request id gets another.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final, get_args
from uuid import UUID

import msgspec

from consumers.ledger.records import Decision, Pending
from consumers.ledger.wire import PaymentRequested as PaymentRequestRead
from schemas.payments import (
    OUTCOME_NAMESPACE,
    PaymentExpired,
    PaymentKind,
    PaymentRejected,
    PaymentSettled,
    expiry_outcome_event_id,
)

OUTCOME_PRODUCER: Final = "ledger"
PAYMENT_KINDS: Final = frozenset(get_args(PaymentKind))
DECISION_SCHEMA_VERSION: Final = PaymentSettled.SCHEMA_VERSION
EXPIRY_SCHEMA_VERSION: Final = PaymentExpired.SCHEMA_VERSION
# `payer_not_owned` first appears in payment.rejected version 4; every other decision is still
# written as version 3, so a reader that knows only version 3 parses all it can understand.
NOT_OWNED_SCHEMA_VERSION: Final = 4
assert PaymentRejected.SCHEMA_VERSION == NOT_OWNED_SCHEMA_VERSION == DECISION_SCHEMA_VERSION + 1


def _text(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


_NAMESPACE_BYTES: Final = OUTCOME_NAMESPACE.bytes


def uuid_text(value: UUID) -> str:
    """`str(value)` at about half its cost (UUID.__str__ is Python; this runs twice per outcome)."""
    h = value.int.to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def outcome_id_text(request_id: str, result: str, fingerprint: bytes) -> str:
    """`str(outcome_event_id(request_id, result, fingerprint))`, without building the UUID object:
    uuid5's SHA-1 with the version (5) and RFC 4122 variant bits set. A unit test pins it."""
    name = f"{request_id}/{result}/{fingerprint.hex()}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Rejected(msgspec.Struct):
    """payment.rejected's fields (schemas/payments.py); a unit test holds them to the contract's."""

    schema_version: int
    event_type: str
    event_id: str
    occurred_at: datetime
    producer: str
    correlation_id: UUID
    request_event_id: UUID
    request_type: str
    request_occurred_at: datetime
    payer_account_id: str
    payee_account_id: str | None
    amount: int
    currency: str
    kind: str | None
    rail: str | None
    result: str


class _Settled(_Rejected):
    """payment.settled: the same fields, then the transfer's."""

    status: str | None
    transfer_id: UUID


_ENCODER: Final = msgspec.json.Encoder()


def outcome_bytes(decision: Decision) -> tuple[str, bytes]:
    """(Kafka key, JSON value) of the outcome of one decision; the same bytes every time.

    `occurred_at` is the request's simulated time, so a republished outcome is byte-identical.
    """
    request = decision.request
    event = request.event
    at = event.occurred_at
    request_id = event.event_id
    event_id = outcome_id_text(uuid_text(request_id), decision.result, request.fingerprint)
    version = NOT_OWNED_SCHEMA_VERSION if decision.result == "payer_not_owned" else DECISION_SCHEMA_VERSION
    kind = rail = None
    if type(event) is PaymentRequestRead:
        kind, rail = event.kind, event.rail
    fields = (
        version,
        "payment.settled" if decision.settled else "payment.rejected",
        event_id,
        at,
        OUTCOME_PRODUCER,
        event.correlation_id,
        request_id,
        event.event_type,
        at,
        decision.debit_account_id,
        decision.credit_account_id,
        decision.amount,
        "PKR",
        kind,
        rail,
        decision.result,
    )
    outcome = _Settled(*fields, decision.status, request_id) if decision.settled else _Rejected(*fields)
    return decision.debit_account_id, _ENCODER.encode(outcome)


def _iso(at: datetime) -> str:
    """ISO-8601 of an aware time (the ledger stores timestamptz); a naive one would be read as local."""
    if at.tzinfo is None:
        raise ValueError(f"naive time {at!r}: the ledger stores only aware times")
    return at.isoformat()


def expiry_outcome_bytes(pending: Pending, transfer_id: UUID) -> tuple[str, bytes]:
    """(Kafka key, JSON value) of the `payment.expired` outcome of one pending transfer.

    Keyed by the payer (the pending transfer's debit account), like the decisions about it.
    `occurred_at` is when it expired on the simulated clock; the request's own time, correlation
    id and rail are repeated when the pending row has them (rows written before migration 0004
    have not: the expiry time and the pending id stand in).
    """
    if pending.expires_at is None:
        raise ValueError(f"pending transfer {pending.id} has no expiry time and cannot expire")
    expired_at = _iso(pending.expires_at)
    requested_at = _iso(pending.requested_at) if pending.requested_at is not None else expired_at
    kind = _text(pending.code if pending.code in PAYMENT_KINDS else None)
    value = (
        f'{{"schema_version":{EXPIRY_SCHEMA_VERSION},"event_type":"payment.expired",'
        f'"event_id":"{expiry_outcome_event_id(pending.id)}","occurred_at":"{expired_at}",'
        f'"producer":"{OUTCOME_PRODUCER}","correlation_id":"{pending.correlation_id or pending.id}",'
        f'"request_event_id":"{pending.id}","request_type":"payment.requested","request_occurred_at":"{requested_at}",'
        f'"payer_account_id":"{pending.debit_account_id}","payee_account_id":"{pending.credit_account_id}",'
        f'"amount":{pending.amount},"currency":"PKR","kind":{kind},"rail":{_text(pending.rail)},'
        f'"result":"expired","status":"expired","transfer_id":"{transfer_id}"}}'
    )
    return pending.debit_account_id, value.encode()
