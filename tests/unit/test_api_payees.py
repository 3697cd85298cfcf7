"""How a payment names its payee (producers/api/payees.py), without the database: exactly one way, IBANs
checked for shape and mod 97, QR payloads verified (CRC, expiry) with their amount and kind rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.api.iban import make_iban
from producers.api.payees import amount_of, check_one_payee, check_payee, normalise_iban, qr_contract_kind, read_qr
from producers.api.problems import ApiError
from producers.api.qr import QrPayload, encode_payload
from schemas.api.payments import PaymentCreate

KEY = b"k" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAYER = "acc_" + "1" * 32
MERCHANT = "acc_" + "3" * 32
STATIC = QrPayload(
    merchant_account=MERCHANT, merchant_name="Khan Kiryana", merchant_city="Peshawar", merchant_category_code="5411"
)
DYNAMIC = replace(STATIC, amount=25_000, expires_at=NOW + timedelta(minutes=15))
IBAN = make_iban(bank_code="SBOX", account_number=1234567890)


def _request(**body: Any) -> PaymentCreate:
    return PaymentCreate.model_validate({"payer": PAYER, **body})


def _problem(call: Any) -> tuple[int, str, str | None, str]:
    with pytest.raises(ApiError) as caught:
        call()
    problem = caught.value.problem
    return problem.status, problem.code, problem.param, problem.detail


@pytest.mark.parametrize(
    ("ways", "code", "param"),
    [
        ({}, "parameter_missing", "payee"),
        ({"payee": MERCHANT, "payee_alias": "03451234567"}, "parameter_unexpected", "payee_alias"),
        ({"payee": MERCHANT, "qr": "x"}, "parameter_unexpected", "qr"),
        ({"payee_iban": IBAN, "qr": "x"}, "parameter_unexpected", "qr"),
        ({"payee_alias": "03451234567", "payee_iban": IBAN}, "parameter_unexpected", "payee_iban"),
    ],
)
def test_exactly_one_way_of_naming_the_payee(ways: dict[str, str], code: str, param: str) -> None:
    """None → 422 parameter_missing `payee`; two → 422 parameter_unexpected naming the second."""
    assert _problem(lambda: check_one_payee(_request(amount=1, **ways)))[:3] == (422, code, param)


def test_an_iban_is_forgiven_spaces_and_case_but_not_a_wrong_digit() -> None:
    """Grouped, lower-case IBANs are normalised; a changed digit fails mod 97 and a foreign shape the pattern."""
    spaced = " ".join(IBAN[i : i + 4] for i in range(0, len(IBAN), 4)).lower()
    assert normalise_iban(spaced) == IBAN
    wrong = IBAN[:-1] + str((int(IBAN[-1]) + 1) % 10)
    assert _problem(lambda: normalise_iban(wrong))[:3] == (422, "invalid_parameter", "payee_iban")
    assert "check digits" in _problem(lambda: normalise_iban(wrong))[3]
    for bad in ("GB82WEST12345698765432", "PK36SCBL00000011234567", "PK36SCBL00000011234567020"):
        assert _problem(lambda bad=bad: normalise_iban(bad))[:3] == (422, "invalid_parameter", "payee_iban")


def test_a_tampered_payload_is_qr_invalid_naming_the_crc() -> None:
    """Any one changed character of the amount fails the CRC: 422 qr_invalid on `qr`, the detail says CRC."""
    text = encode_payload(DYNAMIC)
    at = text.index("250.00")
    tampered = text[:at] + "3" + text[at + 1 :]
    status, code, param, detail = _problem(lambda: read_qr(tampered, now=NOW))
    assert (status, code, param) == (422, "qr_invalid", "qr")
    assert "CRC" in detail and "qr_crc_mismatch" in detail


def test_an_expired_dynamic_code_is_qr_expired_from_its_expiry_second() -> None:
    """Before its expiry a dynamic code reads; at and after it, 422 qr_expired."""
    text = encode_payload(DYNAMIC)
    assert read_qr(text, now=NOW) == DYNAMIC
    assert DYNAMIC.expires_at is not None
    for now in (DYNAMIC.expires_at, DYNAMIC.expires_at + timedelta(days=1)):
        assert _problem(lambda now=now: read_qr(text, now=now))[:3] == (422, "qr_expired", "qr")


def test_a_dynamic_code_sets_the_amount_and_the_kind() -> None:
    """No amount → the code's; the same amount is fine; another → 422 `amount`; kind p2m (another → 422 `kind`)."""
    text = encode_payload(DYNAMIC)
    for body in ({}, {"amount": 25_000}, {"kind": "p2m"}):
        query = check_payee(_request(qr=text, **body), key=KEY, now=NOW)
        assert (query.param, query.account_id, query.qr) == ("qr", MERCHANT, DYNAMIC)
        assert (amount_of(query.request), query.request.kind) == (25_000, "p2m")
    assert _problem(lambda: check_payee(_request(qr=text, amount=1), key=KEY, now=NOW))[:3] == (
        422,
        "invalid_parameter",
        "amount",
    )
    assert _problem(lambda: check_payee(_request(qr=text, kind="bill"), key=KEY, now=NOW))[:3] == (
        422,
        "invalid_parameter",
        "kind",
    )
    assert qr_contract_kind(text) == "p2m_dynamic_qr"


def test_a_static_code_needs_the_amount() -> None:
    """A static code carries no amount: without one, 422 parameter_missing; with one, p2m_static_qr."""
    text = encode_payload(STATIC)
    assert _problem(lambda: check_payee(_request(qr=text), key=KEY, now=NOW))[:3] == (
        422,
        "parameter_missing",
        "amount",
    )
    query = check_payee(_request(qr=text, amount=700), key=KEY, now=NOW)
    assert amount_of(query.request) == 700 and query.request.kind == "p2m"
    assert qr_contract_kind(text) == "p2m_static_qr" and qr_contract_kind(None) is None


def test_other_payees_need_an_amount_and_keep_their_kind() -> None:
    """By id, alias or IBAN the amount is required; the alias becomes its token and the IBAN its stored form."""
    assert _problem(lambda: check_payee(_request(payee=MERCHANT), key=KEY, now=NOW))[:3] == (
        422,
        "parameter_missing",
        "amount",
    )
    by_alias = check_payee(_request(payee_alias="+92 345 1234567", amount=5, kind="bill"), key=KEY, now=NOW)
    assert by_alias.alias_token is not None and by_alias.alias_token.startswith("rst_")
    assert by_alias.request.kind == "bill" and "1234567" not in repr(by_alias.alias_token)
    by_iban = check_payee(_request(payee_iban=IBAN.lower(), amount=5), key=KEY, now=NOW)
    assert (by_iban.iban, by_iban.param) == (IBAN, "payee_iban")
    wrong_number = _problem(lambda: check_payee(_request(payee_alias="04512345678", amount=5), key=KEY, now=NOW))
    assert wrong_number[:3] == (422, "invalid_parameter", "payee_alias") and "04512345678" not in wrong_number[3]
