"""The published JSON Schemas (docs/schemas) and the models agree: what one accepts, the other does.

Property tests draw events from each committed event schema with hypothesis-jsonschema: the model
must accept every one, and its dump must validate against the schema again. For the models with
conditional rules, events drawn without those rules show that the model refuses exactly what the
schema's `allOf` refuses. Examples cover what generation rarely reaches (edge years, other wire
forms of times and UUIDs).

One difference JSON Schema cannot express: it treats 1.0 as an integer, while the models refuse a
float amount even without a fraction (money is never a float). No generator draws 1.0 for an
`integer`, so nothing here filters it; `test_contract.py` pins the model's refusal.
"""

from __future__ import annotations

import json
import warnings
from datetime import date
from functools import cache
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from schemas.envelope import YEAR_MAX, YEAR_MIN
from schemas.events import EVENT_MODELS, dump_event, parse_event
from tests.conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "docs" / "schemas"
# hypothesis-jsonschema draws an event in tens of milliseconds: enough examples per event type to
# reach every enum and optional field, few enough to keep this file well under 20 s.
EXAMPLES_PER_TYPE: Final = 12
EXAMPLES_PER_RULED_TYPE: Final = 40
JsonDoc = dict[str, Any]


@cache
def _schema(event_type: str) -> JsonDoc:
    return json.loads((SCHEMAS / f"{event_type}.json").read_text())  # type: ignore[no-any-return]


@cache
def _validator(event_type: str) -> Draft202012Validator:
    schema = _schema(event_type)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@st.composite
def _date_times(draw: st.DrawFn) -> str:
    """RFC 3339 date-times as hypothesis-jsonschema writes them, but dated in the contract's years.

    Its own `date-time` strategy draws years 1..9999, which the schema's pattern then rejects nine
    times in ten (a health-check failure, not a finding); the years outside are covered by the
    examples in test_out_of_range_times_are_refused_by_both.
    """
    day = draw(st.dates(min_value=date(YEAR_MIN, 1, 1), max_value=date(YEAR_MAX, 12, 31)))
    time = draw(st.times())
    hours, minutes = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    offset = draw(st.sampled_from(["Z", f"+{hours:02d}:{minutes:02d}", f"-{hours:02d}:{minutes:02d}"]))
    return f"{day}T{time}{offset}"


# `uuid` is no format hypothesis-jsonschema knows; drawn from the pattern it is slow and lowercase.
FORMATS: Final = {
    "date-time": _date_times(),
    "uuid": st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()),
}


def _events(schema: JsonDoc) -> st.SearchStrategy[JsonDoc]:
    with warnings.catch_warnings():  # "overriding standard format 'date-time'": on purpose, see above
        warnings.simplefilter("ignore")
        return from_schema(schema, custom_formats=FORMATS)  # type: ignore[return-value]  # an object schema


@cache
def _drawn(event_type: str) -> st.SearchStrategy[JsonDoc]:
    return _events(_schema(event_type))


@cache
def _drawn_without_rules(event_type: str) -> st.SearchStrategy[JsonDoc]:
    relaxed = {k: v for k, v in _schema(event_type).items() if k != "allOf"}
    return _events(relaxed)


def _wire(doc: JsonDoc) -> bytes:
    return json.dumps(doc).encode()


RULED = sorted(stem for stem, model in EVENT_MODELS.items() if model.RULES)


def test_every_event_type_has_a_committed_schema_and_rules_are_published() -> None:
    """Each event type has docs/schemas/<type>.json; exactly the models with RULES publish an allOf."""
    assert RULED == ["account.opened", "payment.requested"]
    for stem in EVENT_MODELS:
        assert (SCHEMAS / f"{stem}.json").exists(), f"run `make schemas`: {stem}.json is missing"
        assert ("allOf" in _schema(stem)) == (stem in RULED), stem
        assert "event_type" in _schema(stem)["required"], stem


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
@settings(max_examples=EXAMPLES_PER_TYPE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_events_drawn_from_the_schema_are_accepted_and_dump_back_valid(event_type: str, data: st.DataObject) -> None:
    """An event valid under the published schema parses into its model; the model's dump is valid again."""
    doc = data.draw(_drawn(event_type), label="event")
    event = parse_event(_wire(doc))
    assert isinstance(event, EVENT_MODELS[event_type])
    _validator(event_type).validate(json.loads(dump_event(event)))


@pytest.mark.parametrize("event_type", RULED)
@settings(max_examples=EXAMPLES_PER_RULED_TYPE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_model_refuses_exactly_what_the_schema_rules_refuse(event_type: str, data: st.DataObject) -> None:
    """Drawn without the schema's allOf: the model refuses an event iff the full schema does."""
    doc = data.draw(_drawn_without_rules(event_type), label="event")
    schema_valid = _validator(event_type).is_valid(doc)
    try:
        event = parse_event(_wire(doc))
    except ValidationError as error:
        assert not schema_valid, f"the model refuses what the schema accepts: {error}"
        return
    assert schema_valid, "the model accepts what the schema refuses"
    _validator(event_type).validate(json.loads(dump_event(event)))


ENVELOPE: Final = {
    "event_id": "6f0c8a52-3f0e-4c61-9a55-2d0f6f3b7a10",
    "occurred_at": "2026-05-01T08:30:00Z",
    "producer": "test",
    "correlation_id": "7d0c8a52-3f0e-4c61-9a55-2d0f6f3b7a10",
}
CITIZEN: Final = {
    **ENVELOPE,
    "event_type": "account.opened",
    "account_id": "wal_0000000000000001",
    "kind": "citizen_wallet",
    "holder_token": "cit_0000000000000001",
    "provider": "EPMB",
    "district": "Swat",
    "gender": "female",
}
PAYMENT: Final = {
    **ENVELOPE,
    "event_type": "payment.requested",
    "kind": "p2p",
    "rail": "raast",
    "payer_account_id": "wal_0000000000000001",
    "payee_account_id": "wal_0000000000000002",
    "amount": 10_000,
}


def _agree(doc: JsonDoc) -> bool:
    """Whether both sides accept the document; fails the test when only one of them does."""
    schema_valid = _validator(doc["event_type"]).is_valid(doc)
    try:
        parse_event(_wire(doc))
        model_valid = True
    except ValidationError:
        model_valid = False
    assert schema_valid == model_valid, (doc, schema_valid, model_valid)
    return model_valid


@pytest.mark.parametrize(
    "doc, valid",
    [
        (CITIZEN, True),
        ({k: v for k, v in CITIZEN.items() if k != "gender"}, False),  # issue 8: a wallet without gender
        ({**CITIZEN, "gender": None}, False),
        ({**CITIZEN, "kind": "citizen_bank"}, False),  # a bank account needs an IBAN
        ({**CITIZEN, "kind": "citizen_bank", "iban": "PK36SCBL0000001123456702"}, True),
        ({**CITIZEN, "kind": "merchant"}, False),  # a merchant needs a category
        ({**CITIZEN, "kind": "merchant", "gender": None, "merchant_category": "kiryana"}, True),
        ({**CITIZEN, "kind": "agent", "gender": None}, True),
        (PAYMENT, True),
        ({**PAYMENT, "timeout_seconds": 60}, False),  # a timeout without pending
        ({**PAYMENT, "pending": False, "timeout_seconds": 60}, False),
        ({**PAYMENT, "pending": True, "timeout_seconds": 60}, True),
        ({**PAYMENT, "pending": False, "timeout_seconds": 0}, True),
    ],
)
def test_conditional_rules_hold_on_both_sides(doc: JsonDoc, valid: bool) -> None:
    """Each conditional rule is enforced alike by the published schema and by the model."""
    assert _agree(doc) is valid


@pytest.mark.parametrize(
    "occurred_at",
    [
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",  # 1969 in UTC
        "2999-12-31T23:30:00-01:00",  # 3000 in UTC
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC: not even a Python datetime
        "9999-12-31T23:00:00-05:00",
        "2026-06-30T23:59:60Z",  # a leap second
        "2026-05-01T08:30:00+24:00",
        "2026-05-01T08:30:00",  # no offset: the time would be ambiguous
    ],
)
def test_out_of_range_times_are_refused_by_both(occurred_at: str) -> None:
    """Times outside UTC years YEAR_MIN..YEAR_MAX, leap seconds and bad offsets: refused alike."""
    assert _agree({**PAYMENT, "occurred_at": occurred_at}) is False


@pytest.mark.parametrize(
    "field, written",
    [
        ("occurred_at", "1970-01-01T00:00:00Z"),
        ("occurred_at", "2999-12-31T23:59:59.999999+00:00"),
        ("occurred_at", "1970-06-01T10:00:00+05:00"),  # only the schema refuses the first year with an offset
        ("occurred_at", "2026-05-01 08:30:00+05:00"),
        ("occurred_at", "2026-05-01t08:30:00.123456789z"),
        ("occurred_at", "2026-05-01T08:30:00,5+0500"),
        ("event_id", "6F0C8A52-3F0E-4C61-9A55-2D0F6F3B7A10"),
        ("event_id", "6f0c8a523f0e4c619a552d0f6f3b7a10"),
        ("event_id", "urn:uuid:6f0c8a52-3f0e-4c61-9a55-2d0f6f3b7a10"),
    ],
)
def test_other_wire_forms_the_model_reads_dump_valid(field: str, written: str) -> None:
    """Forms the model is lenient about (offsets, lowercase, UUID spellings) dump to schema-valid JSON."""
    event = parse_event(_wire({**PAYMENT, field: written}))
    _validator("payment.requested").validate(json.loads(dump_event(event)))
