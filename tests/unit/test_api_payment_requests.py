"""Request-to-pay's pure rules (producers/api/payment_requests.py): who the payer is, the magic decline,
lazy expiry and the 409s for answering a request that is no longer pending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from producers.api.payment_requests import check_payer_given, is_magic_decline, not_answerable, shown_status
from producers.api.problems import ApiError
from schemas.api.magic import PAYER_DECLINES_REQUEST
from schemas.api.payment_requests import REQUEST_EXPIRES_IN_DEFAULT_S, REQUEST_EXPIRES_IN_MAX_S, PaymentRequestCreate

PAYEE = "acc_" + "2" * 32
PAYER = "acc_" + "1" * 32
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_the_payer_is_given_by_id_or_by_alias_and_never_both() -> None:
    """Exactly one of payer and payer_alias: named when given, 422 naming the parameter otherwise."""
    assert check_payer_given(PaymentRequestCreate(payee=PAYEE, payer=PAYER, amount=1)) == "payer"
    assert check_payer_given(PaymentRequestCreate(payee=PAYEE, payer_alias="03451234567", amount=1)) == "payer_alias"
    with pytest.raises(ApiError) as both:
        check_payer_given(PaymentRequestCreate(payee=PAYEE, payer=PAYER, payer_alias="03451234567", amount=1))
    assert (both.value.problem.code, both.value.problem.param) == ("parameter_unexpected", "payer_alias")
    with pytest.raises(ApiError) as neither:
        check_payer_given(PaymentRequestCreate(payee=PAYEE, amount=1))
    assert (neither.value.problem.code, neither.value.problem.param) == ("parameter_missing", "payer")


@pytest.mark.parametrize(
    ("alias", "magic"),
    [
        (PAYER_DECLINES_REQUEST, True),
        ("+92" + PAYER_DECLINES_REQUEST[1:], True),
        ("92" + PAYER_DECLINES_REQUEST[1:], True),
        ("0300-0000009", True),
        ("03000000008", False),
        ("03451234567", False),
    ],
)
def test_the_magic_decline_number_is_recognised_in_every_form(alias: str, magic: bool) -> None:
    """PAYER_DECLINES_REQUEST is the magic decline however it is written; its neighbours are not."""
    assert is_magic_decline(alias) is magic


def test_an_alias_that_is_no_mobile_number_is_a_422_that_does_not_repeat_it() -> None:
    """A payer_alias that is not a Pakistani mobile number: 422 on payer_alias, the input not echoed."""
    with pytest.raises(ApiError) as refused:
        is_magic_decline("12345678")
    assert refused.value.problem.status == 422 and refused.value.problem.param == "payer_alias"
    assert "12345678" not in refused.value.problem.detail


def test_a_pending_request_reads_expired_once_its_time_has_passed() -> None:
    """pending at expires_at or later reads expired; before it pending; answered requests keep their status."""
    assert shown_status(status="pending", expires_at=AT, now=AT - timedelta(microseconds=1)) == "pending"
    assert shown_status(status="pending", expires_at=AT, now=AT) == "expired"
    for status in ("approved", "declined", "expired"):
        assert shown_status(status=status, expires_at=AT, now=AT + timedelta(days=1)) == status


def test_answering_an_answered_or_expired_request_is_a_409_naming_why() -> None:
    """expired → payment_request_expired; approved or declined → payment_request_not_pending with the status."""
    assert not_answerable("expired", "approved").problem.code == "payment_request_expired"
    declined = not_answerable("declined", "approved").problem
    assert (declined.status, declined.code) == (409, "payment_request_not_pending") and "`declined`" in declined.detail


def test_the_expiry_defaults_to_a_day_and_is_at_most_a_week() -> None:
    """expires_in: 24 h when omitted; 1 s to 7 days accepted; 0, 7 days + 1 s and a float refused."""
    assert PaymentRequestCreate(payee=PAYEE, payer=PAYER, amount=1).expires_in == REQUEST_EXPIRES_IN_DEFAULT_S == 86_400
    assert REQUEST_EXPIRES_IN_MAX_S == 7 * 86_400
    PaymentRequestCreate(payee=PAYEE, payer=PAYER, amount=1, expires_in=REQUEST_EXPIRES_IN_MAX_S)
    for bad in (0, REQUEST_EXPIRES_IN_MAX_S + 1, 1.5):
        with pytest.raises(ValidationError):
            PaymentRequestCreate.model_validate({"payee": PAYEE, "payer": PAYER, "amount": 1, "expires_in": bad})
