"""The event contract: round trips, integer paisa, UTC time, tokenised ids, one topic per event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas.accounts import AccountOpened
from schemas.cash import CashIn, CashPurchase
from schemas.commerce import OrderPlaced
from schemas.events import EVENT_MODELS, dump_event, parse_event
from schemas.money import format_paisa
from schemas.payments import (
    PaymentExpired,
    PaymentRejected,
    PaymentRequested,
    PaymentSettled,
    expiry_outcome_event_id,
    outcome_event_id,
)
from schemas.topics import CATALOG, PAYMENT_OUTCOMES, PAYMENT_REQUESTS, topic_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _envelope() -> dict[str, object]:
    return {"event_id": uuid.uuid4(), "occurred_at": T0, "producer": "test", "correlation_id": uuid.uuid4()}


def _payment(**overrides: object) -> PaymentRequested:
    fields = {
        **_envelope(),
        "kind": "p2m_static_qr",
        "rail": "raast",
        "payer_account_id": "acc_00000000000000a1",
        "payee_account_id": "acc_00000000000000b2",
        "amount": 395_000,
    }
    return PaymentRequested(**(fields | overrides))


def test_payment_round_trips_through_json_bytes() -> None:
    """dump_event then parse_event gives back an equal, frozen model of the right type."""
    event = _payment()
    parsed = parse_event(dump_event(event))
    assert parsed == event and isinstance(parsed, PaymentRequested)
    with pytest.raises(ValidationError):
        parsed.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize("amount", [10.5, 10.0, "100", True, 0, -5])
def test_amount_must_be_positive_integer_paisa(amount: object) -> None:
    """Floats, numeric strings, booleans, zero and negatives are all refused as amounts."""
    with pytest.raises(ValidationError):
        _payment(amount=amount)


def test_amount_from_wire_json_float_is_refused() -> None:
    """A JSON float on the wire is refused even when it has no fraction."""
    raw = dump_event(_payment()).replace(b'"amount":395000', b'"amount":395000.0')
    with pytest.raises(ValidationError):
        parse_event(raw)


def test_occurred_at_must_be_aware_and_is_normalised_to_utc() -> None:
    """Naive datetimes are refused; other offsets are converted to UTC."""
    with pytest.raises(ValidationError):
        _payment(occurred_at=datetime(2026, 1, 1))
    pkt = timezone(timedelta(hours=5))
    event = _payment(occurred_at=datetime(2026, 1, 1, 5, tzinfo=pkt))
    assert event.occurred_at == T0 and event.occurred_at.utcoffset() == timedelta(0)


def test_only_pkr_is_accepted() -> None:
    """The sandbox is single-currency: anything but PKR is refused."""
    with pytest.raises(ValidationError):
        _payment(currency="USD")


@pytest.mark.parametrize("account_id", ["35202-1234567-1", "03001234567", "acc_XYZ", ""])
def test_account_ids_must_be_tokens_not_cnic_or_phone(account_id: str) -> None:
    """A CNIC, a phone number or a malformed token cannot be used as an account id."""
    with pytest.raises(ValidationError):
        _payment(payer_account_id=account_id)


def test_timeout_only_on_pending_payments() -> None:
    """A timeout without pending=True is a contradiction and is refused."""
    with pytest.raises(ValidationError):
        _payment(timeout_seconds=60)
    assert _payment(pending=True, timeout_seconds=60).timeout_seconds == 60


def test_citizen_account_needs_gender_and_bank_account_needs_iban() -> None:
    """Kind-specific fields are enforced so inclusion by gender can always be measured."""
    base = {
        **_envelope(),
        "account_id": "acc_00000000000000c3",
        "holder_token": "hld_00000000000000c3",
        "provider": "EPMB",
        "district": "Peshawar",
    }
    with pytest.raises(ValidationError, match="gender"):
        AccountOpened(**base, kind="citizen_wallet")
    with pytest.raises(ValidationError, match="iban"):
        AccountOpened(**base, kind="citizen_bank", gender="female")
    with pytest.raises(ValidationError):
        AccountOpened(**base, kind="citizen_bank", gender="female", iban="PK36SCBL00000011234567")
    ok = AccountOpened(**base, kind="citizen_bank", gender="female", iban="PK36SCBL0000001123456702")
    assert ok.partition_key == "acc_00000000000000c3"


def test_unknown_event_type_is_refused() -> None:
    """An event_type outside the contract does not parse."""
    raw = dump_event(_payment()).replace(b'"payment.requested"', b'"payment.teleported"')
    with pytest.raises(ValidationError):
        parse_event(raw)


def test_every_event_type_has_exactly_one_topic_and_key() -> None:
    """Each event type is carried by exactly one catalog topic; requests are keyed by payer."""
    carried = [name for spec in CATALOG for name in spec.event_type_names]
    assert sorted(carried) == sorted(EVENT_MODELS)
    payment = _payment()
    assert topic_for(payment) is PAYMENT_REQUESTS
    assert payment.partition_key == payment.payer_account_id
    cash_in = CashIn(
        **_envelope(), customer_account_id="acc_00000000000000a1", agent_account_id="agt_00000000000000a9", amount=1
    )
    assert topic_for(cash_in) is PAYMENT_REQUESTS and cash_in.partition_key == "acc_00000000000000a1"


def test_outcome_ids_are_one_per_distinct_answer_and_stable() -> None:
    """Same request, result and fingerprint: same id; another result or fingerprint: another id."""
    request = uuid.uuid4()
    first = outcome_event_id(request, "created", b"\x01" * 16)
    assert first == outcome_event_id(request, "created", b"\x01" * 16)
    assert first == uuid.uuid5(uuid.UUID("6b8f8a52-3f0e-4c61-9a55-2d0f6f3b7a10"), f"{request}/created/{'01' * 16}")
    others = {
        outcome_event_id(request, "exists", b"\x01" * 16),
        outcome_event_id(request, "exists_with_different_amount", b"\x02" * 16),
        outcome_event_id(request, "exists_with_different_fields", b"\x03" * 16),
        outcome_event_id(request, "exists_with_different_fields", b"\x04" * 16),
        outcome_event_id(uuid.uuid4(), "created", b"\x01" * 16),
        expiry_outcome_event_id(request),
    }
    assert len(others) == 6 and first not in others
    assert expiry_outcome_event_id(request) == expiry_outcome_event_id(request)
    settled = PaymentSettled(
        **(_envelope() | {"event_id": first}),
        request_event_id=request,
        request_type="payment.requested",
        request_occurred_at=T0,
        payer_account_id="acc_00000000000000a1",
        amount=100,
        result="created",
        status="posted",
        transfer_id=request,
    )
    assert parse_event(dump_event(settled)) == settled


def test_outcome_versions_follow_the_id_change() -> None:
    """Settled outcomes are schema_version 3 (2: new ids, invalid_timestamp; 3: limit codes, refunds),
    rejections 4 (payer_not_owned); versions 2 and 3 still parse (later versions only widened enums),
    a version-1 one no longer does."""
    assert PaymentSettled.SCHEMA_VERSION == 3
    assert PaymentRejected.SCHEMA_VERSION == 4
    assert PaymentExpired.SCHEMA_VERSION == 1
    for model in EVENT_MODELS.values():
        assert model.model_fields["schema_version"].default == model.SCHEMA_VERSION, model
    rejected = PaymentRejected(
        **_envelope(),
        request_event_id=uuid.uuid4(),
        request_type="payment.requested",
        request_occurred_at=T0,
        payer_account_id="acc_00000000000000a1",
        amount=100,
        result="invalid_timestamp",
    )
    assert parse_event(dump_event(rejected)) == rejected
    for older in (2, 3):
        downgraded = dump_event(rejected).replace(b'"schema_version":4', f'"schema_version":{older}'.encode())
        assert parse_event(downgraded).schema_version == older
    with pytest.raises(ValidationError):
        parse_event(dump_event(rejected).replace(b'"schema_version":4', b'"schema_version":1'))


def test_expiry_is_an_outcome_on_the_outcomes_topic() -> None:
    """payment.expired travels with the other outcomes, keyed by the payer, and round-trips."""
    pending = uuid.uuid4()
    expired = PaymentExpired(
        **(_envelope() | {"event_id": expiry_outcome_event_id(pending)}),
        request_event_id=pending,
        request_type="payment.requested",
        request_occurred_at=T0,
        payer_account_id="acc_00000000000000a1",
        payee_account_id="acc_00000000000000b2",
        amount=5_000,
        result="expired",
        status="expired",
        transfer_id=uuid.uuid4(),
    )
    assert topic_for(expired) is PAYMENT_OUTCOMES and expired.partition_key == "acc_00000000000000a1"
    assert parse_event(dump_event(expired)) == expired


def test_cash_and_commerce_events_parse() -> None:
    """Cash purchases and orders are part of the contract and keep holder tokens, not identities."""
    purchase = CashPurchase(
        **_envelope(), payer_token="hld_0000000000000001", merchant_category="kiryana", district="Swat", amount=26_200
    )
    order = OrderPlaced(
        **_envelope(),
        order_id="ord_0000000000000001",
        buyer_token="hld_0000000000000001",
        seller_account_id="acc_00000000000000e1",
        amount=127_000,
        payment_method="cash_on_delivery",
        district="Mardan",
    )
    for event in (purchase, order):
        assert parse_event(dump_event(event)) == event


def test_format_paisa() -> None:
    """Paisa print as rupees with two decimals and thousands separators."""
    assert format_paisa(123_456) == "Rs 1,234.56"
    assert format_paisa(-5) == "-Rs 0.05"


def test_outcome_ids_are_name_based_uuid5() -> None:
    """The fast derivation of outcome ids equals RFC 4122 uuid5 in the outcome namespace."""
    from uuid import uuid5

    from schemas.payments import OUTCOME_NAMESPACE, expiry_outcome_event_id

    request = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert outcome_event_id(request, "created", b"\x01\x02") == uuid5(OUTCOME_NAMESPACE, f"{request}/created/0102")
    assert expiry_outcome_event_id(request) == uuid5(OUTCOME_NAMESPACE, f"{request}/expired")
