"""Making a QR code through the API (producers/api/qr_codes.py, schemas/api/qr.py), without the database: the
type's fields, the merchant's city, values the payload cannot carry named by their request parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.api import qr
from producers.api.problems import ApiError
from producers.api.qr_codes import build_payload, check_type_fields, image_path, merchant_city
from schemas.api.qr import PAYLOAD_CHARS_MAX, QR_AMOUNT_MAX, QrCodeCreate

MERCHANT = "acc_" + "3" * 32
NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
ROW = {"id": MERCHANT, "district": "Peshawar", "category": "pharmacy"}


def _request(**body: Any) -> QrCodeCreate:
    return QrCodeCreate.model_validate({"merchant": MERCHANT, **body})


def _problem(call: Any) -> tuple[int, str, str | None]:
    with pytest.raises(ApiError) as caught:
        call()
    problem = caught.value.problem
    return problem.status, problem.code, problem.param


def test_the_api_bounds_are_the_payload_formats() -> None:
    """The request's limits are the encoder's own, so the schema refuses what the payload cannot hold."""
    assert QR_AMOUNT_MAX == qr.QR_AMOUNT_PAISA_MAX and PAYLOAD_CHARS_MAX == qr.PAYLOAD_CHARS_MAX


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "static", "amount": 5}, (422, "parameter_unexpected", "amount")),
        ({"type": "static", "expires_in": 60}, (422, "parameter_unexpected", "expires_in")),
        ({"type": "dynamic"}, (422, "parameter_missing", "amount")),
    ],
)
def test_each_type_takes_its_own_fields(body: dict[str, Any], expected: tuple[int, str, str]) -> None:
    """Static: no amount, no expiry. Dynamic: an amount."""
    assert _problem(lambda: check_type_fields(_request(**body))) == expected


def test_a_dynamic_code_is_built_from_the_merchant_and_the_request() -> None:
    """MCC from the category, city from the district, a default name from the id, expiry now + expires_in (to
    the second); a given name and city win."""
    request = _request(type="dynamic", amount=9_900, reference="INV-7", bill_number="B-1", expires_in=900)
    check_type_fields(request)
    payload = build_payload(request, ROW, now=NOW)  # type: ignore[arg-type]
    assert payload.merchant_category_code == "5912" and payload.merchant_city == "Peshawar"
    assert payload.merchant_name == "Merchant 33333333" and payload.amount == 9_900
    assert payload.expires_at == (NOW + timedelta(seconds=900)).replace(microsecond=0)
    assert qr.parse_payload(qr.encode_payload(payload)) == payload
    named = build_payload(_request(type="static", merchant_name="Gul", merchant_city="Swat"), ROW, now=NOW)  # type: ignore[arg-type]
    assert (named.merchant_name, named.merchant_city, named.expires_at) == ("Gul", "Swat", None)


def test_a_district_tag_60_cannot_hold_asks_for_merchant_city() -> None:
    """A district over 15 characters (or not ASCII) → 422 parameter_missing `merchant_city`."""
    for district in ("Dera Ismail Khan", "پشاور"):
        assert _problem(lambda d=district: merchant_city(_request(type="static"), d)) == (
            422,
            "parameter_missing",
            "merchant_city",
        )
    assert merchant_city(_request(type="static"), "Swat") == "Swat"


def test_request_limits_refuse_what_the_payload_cannot_carry() -> None:
    """Reference over 25 characters, non-ASCII text, leading spaces, an amount over tag 54's: refused by the model."""
    for body in (
        {"type": "dynamic", "amount": 1, "reference": "R" * 26},
        {"type": "dynamic", "amount": 1, "bill_number": "bill ü"},
        {"type": "static", "merchant_name": " Gul"},
        {"type": "dynamic", "amount": QR_AMOUNT_MAX + 1},
        {"type": "dynamic", "amount": 1, "expires_in": 0},
    ):
        with pytest.raises(ValueError):
            _request(**body)


def test_the_image_is_served_under_the_code() -> None:
    """image_url is the PNG endpoint of the code."""
    assert image_path("qr_" + "a" * 32) == "/v1/qr_codes/qr_" + "a" * 32 + "/image.png"
