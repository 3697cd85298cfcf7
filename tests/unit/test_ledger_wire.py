"""The ledger's fast reader (consumers/ledger/wire.py) is never looser than the contract.

Whatever it accepts, the contract's pydantic models accept with the same values and the same
canonical bytes (so the same fingerprint); whatever it declines, the reader still gets from the
models. Documents are generated around valid requests of every type, with values chosen where
the two libraries could differ: time forms and precision, offsets, UUID spellings, account ids
with a newline, lax forms of numbers and booleans, lengths at the limits, unknown fields.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.ledger import wire
from consumers.ledger.deadletter import Unreadable
from consumers.ledger.reading import REQUEST_ADAPTER, fingerprint, read_request

UUID_A = "00000000-0000-4000-8000-000000000001"
UUID_B = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
BASE: dict[str, Any] = {
    "event_id": UUID_A,
    "occurred_at": "2026-03-01T10:00:00Z",
    "producer": "sim",
    "correlation_id": UUID_B,
}
VALID: dict[str, dict[str, Any]] = {
    "payment.requested": {
        **BASE,
        "event_type": "payment.requested",
        "kind": "p2p",
        "rail": "wallet",
        "payer_account_id": "wal_0000000000000001",
        "payee_account_id": "biz_00000000000000ff",
        "amount": 2_500,
    },
    "payment.post_requested": {
        **BASE,
        "event_type": "payment.post_requested",
        "pending_id": UUID_B,
        "payer_account_id": "wal_0000000000000001",
    },
    "payment.void_requested": {
        **BASE,
        "event_type": "payment.void_requested",
        "pending_id": UUID_B,
        "payer_account_id": "wal_0000000000000001",
    },
    "payment.refund_requested": {
        **BASE,
        "event_type": "payment.refund_requested",
        "payment_event_id": UUID_B,
        "payer_account_id": "biz_00000000000000ff",
        "payee_account_id": "wal_0000000000000001",
        "amount": 100,
    },
    "cash.in": {
        **BASE,
        "event_type": "cash.in",
        "customer_account_id": "wal_0000000000000001",
        "agent_account_id": "agt_0000000000000002",
        "amount": 50_000,
    },
    "cash.out": {
        **BASE,
        "event_type": "cash.out",
        "customer_account_id": "wal_0000000000000001",
        "agent_account_id": "agt_0000000000000002",
        "amount": 50_000,
    },
}

TIMES = [
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00+00:00",
    "2026-03-01T10:00:00-00:00",
    "2026-03-01T15:00:00+05:00",
    "2026-03-01T10:00:00.5Z",
    "2026-03-01T10:00:00.120000Z",
    "2026-03-01T10:00:00.123456Z",
    "2026-03-01T10:00:00.1234567Z",
    "2026-03-01T10:00:00.9999999Z",
    "2026-03-01 10:00:00Z",
    "2026-03-01t10:00:00z",
    "2026-03-01T10:00Z",
    "2026-03-01T10:00:00",
    "2026-03-01T23:59:60Z",
    "2026-02-30T10:00:00Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T04:00:00+05:00",
    "2999-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "20260301T100000Z",
    "2026-03-01T10:00:00,5Z",
    1_772_359_200,
    None,
]
UUIDS = [
    UUID_A,
    UUID_A.upper(),
    UUID_A.replace("-", ""),
    "{" + UUID_A + "}",
    "urn:uuid:" + UUID_A,
    UUID_A[:-1],
    "",
    12,
    None,
]
ACCOUNT_IDS = [
    "wal_0000000000000001",
    "ab_0123abcd",
    "abcd_" + "f" * 32,
    "abcde_01234567",
    "a_01234567",
    "wal_0123456",
    "wal_" + "0" * 33,
    "WAL_0000000000000001",
    "wal_000000000000000G",
    "wal_0000000000000001\n",
    " wal_0000000000000001",
    "wal_0000000000000001 ",
    "",
    7,
    None,
]
AMOUNTS = [1, 2_500, 10**12, 10**12 + 1, 0, -5, 2.0, 2.5, "25", True, 2**64, None]
STRINGS = [
    "sim",
    "",
    "x" * 40,
    "x" * 41,
    "x" * 64,
    "x" * 65,
    "é" * 40,
    "é" * 41,
    "é" * 64,
    "é" * 65,
    "\U0001f600" * 64,
    "\U0001f600" * 65,
    "tab\there",
    "nul\u0000",
    "\U0001f600",
    5,
    None,
]
BOOLEANS = [True, False, "true", 1, 0, None]
TIMEOUTS = [0, 60, 90 * 86_400, 90 * 86_400 + 1, -1, 60.0, "60", None]
CHOICES: dict[str, list[Any]] = {
    "occurred_at": TIMES,
    "event_id": UUIDS,
    "correlation_id": UUIDS,
    "pending_id": UUIDS,
    "payment_event_id": UUIDS,
    "payer_account_id": ACCOUNT_IDS,
    "payee_account_id": ACCOUNT_IDS,
    "customer_account_id": ACCOUNT_IDS,
    "agent_account_id": ACCOUNT_IDS,
    "amount": AMOUNTS,
    "producer": STRINGS,
    "order_id": STRINGS,
    "reference": STRINGS,
    "pending": BOOLEANS,
    "timeout_seconds": TIMEOUTS,
    "schema_version": [1, 2, 1.0, "1", True, None],
    "currency": ["PKR", "USD", "pkr", None],
    "kind": ["p2p", "wage", "P2P", "p2m", None],
    "rail": ["raast", "card", "cash", None],
    "event_type": ["payment.requested", "cash.in", "cash.out", "payment.void_requested", "nope", None],
}
FIELDS = sorted(CHOICES)
MISSING = object()


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A valid request with a few fields changed, dropped or added, serialised one of three ways."""
    document = dict(VALID[draw(st.sampled_from(sorted(VALID)))])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        value = draw(st.sampled_from([*CHOICES[name], MISSING]))
        if value is MISSING:
            document.pop(name, None)
        else:
            document[name] = value
    if draw(st.booleans()):
        document["unknown_field"] = {"event_type": "cash.in", "nested": [1, 2.5]}
    style = draw(st.sampled_from(["compact", "spaced", "ascii"]))
    if style == "compact":
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return json.dumps(document, ensure_ascii=style == "ascii").encode()


def _contract(raw: bytes) -> wire.RequestModel | None:
    try:
        return REQUEST_ADAPTER.validate_json(raw)
    except ValidationError:
        return None


@settings(max_examples=3_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=documents())
def test_what_the_fast_reader_accepts_the_contract_accepts_with_the_same_values_and_bytes(raw: bytes) -> None:
    fast = wire.read(raw)
    model = _contract(raw)
    if fast is not None:
        assert model is not None, f"the fast reader accepted what the contract refuses: {raw!r}"
        assert fast == wire.from_model(model)
        assert wire.canonical(fast) == type(model).__pydantic_serializer__.to_json(model)
    # Whichever path it takes, the ledger's reader gives the contract's answer.
    read = read_request(raw)
    if model is None:
        assert isinstance(read, Unreadable)
    else:
        assert read == wire.from_model(model)
        assert wire.canonical(read) == type(model).__pydantic_serializer__.to_json(model)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_every_request_type_takes_the_fast_path_when_well_formed(event_type: str) -> None:
    """Not a vacuous property above: the ordinary form of every type is read without pydantic."""
    raw = json.dumps(VALID[event_type]).encode()
    fast = wire.read(raw)
    assert fast is not None and fast.event_type == event_type
    model = _contract(raw)
    assert model is not None and fast == wire.from_model(model)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "2026-03-01T15:00:00+05:00"),  # the contract converts it to UTC
        ("occurred_at", "2026-03-01T10:00:00.1234567Z"),  # pydantic truncates, msgspec would round
        ("payer_account_id", "wal_0000000000000001\n"),  # Python's `$` would let the newline through
        ("amount", "25"),  # refused by the contract (strict paisa): declined here too
        ("timeout_seconds", 60),  # a timeout on a payment that is not pending
    ],
)
def test_the_fast_reader_declines_what_only_the_contract_can_judge(field: str, value: object) -> None:
    raw = json.dumps({**VALID["payment.requested"], field: value}).encode()
    assert wire.read(raw) is None
    model = _contract(raw)
    read = read_request(raw)
    assert (model is None and isinstance(read, Unreadable)) or read == wire.from_model(model)  # type: ignore[arg-type]


def test_a_time_with_an_offset_is_read_as_utc_with_the_fingerprint_of_its_z_form() -> None:
    plain = read_request(json.dumps(VALID["payment.requested"]).encode())
    shifted = read_request(
        json.dumps({**VALID["payment.requested"], "occurred_at": "2026-03-01T15:00:00+05:00"}).encode()
    )
    assert not isinstance(plain, Unreadable) and not isinstance(shifted, Unreadable)
    assert shifted == plain and fingerprint(shifted) == fingerprint(plain)


@pytest.mark.parametrize(("struct", "model"), list(wire.MODELS.items()))
def test_each_struct_has_its_models_fields_in_order_with_its_defaults(struct: type, model: type) -> None:
    fields = model.model_fields  # type: ignore[attr-defined]
    mine = {field.name: field for field in msgspec.structs.fields(struct)}
    assert tuple(mine) == tuple(fields)
    for name, info in fields.items():
        if name == "event_type":
            assert mine[name].required  # the fast reader needs the tag; so does the contract's union
        elif info.is_required():
            assert mine[name].required, name
        else:
            assert not mine[name].required and mine[name].default == info.default, name


def test_the_known_account_ids_stay_bounded() -> None:
    wire._known_account_ids.clear()
    for i in range(wire.KNOWN_ACCOUNT_IDS_MAX + 10):
        raw = json.dumps({**VALID["cash.in"], "customer_account_id": f"wal_{i:016x}"}).encode()
        assert wire.read(raw) is not None
    assert len(wire._known_account_ids) <= wire.KNOWN_ACCOUNT_IDS_MAX


@pytest.mark.parametrize(("struct", "model"), list(wire.MODELS.items()))
def test_the_fast_reader_knows_every_rule_and_validator_of_the_contract(struct: type, model: type) -> None:
    """`wire._checked` re-states the contract's one model-level rule (PaymentRequested: a timeout only on a
    pending payment). A rule or validator added to any request model must be added there too: this fails first."""
    decorators = model.__pydantic_decorators__  # type: ignore[attr-defined]
    validators = {*decorators.model_validators, *decorators.field_validators}
    rules = [(rule.when, rule.is_in, rule.field, rule.value) for rule in model.RULES]  # type: ignore[attr-defined]
    if struct is wire.PaymentRequested:
        assert validators == {"check_timeout"} and rules == [("pending", (False,), "timeout_seconds", 0)]
    else:
        assert validators == set() and rules == []
