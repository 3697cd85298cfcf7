"""Phone numbers and CNICs: normalisation and keyed tokens (producers/api/privacy.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from producers.api.privacy import (
    CNIC_FORMS,
    MSISDN_FORMS,
    alias_token,
    holder_token,
    normalize_cnic,
    normalize_msisdn,
)
from schemas.envelope import TOKEN_PATTERN, HolderToken

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
HOLDER_TOKEN = TypeAdapter(HolderToken)
# HMAC-SHA256(KEY, b"kpsandbox/<use>/<kind>:" + digits), first 32 hex digits, computed by hand.
PINNED_TOKENS = {
    "alias": "rst_9e0e446c9952c151b351786b114716e8",
    "holder_msisdn": "hld_b99a1e6b971a4bccb7103823a2f634c0",
    "holder_cnic": "hld_db7c0a4f84e656ec9dc9fd0f4f03548f",
}

# The ten digits after the leading 0 of a Pakistani mobile number: 3 and nine more.
subscriber_digits = st.from_regex(r"3[0-9]{9}", fullmatch=True)
cnic_digits = st.from_regex(r"[0-9]{13}", fullmatch=True)


@pytest.mark.parametrize(
    "text",
    [
        "03451234567",
        "+923451234567",
        "923451234567",
        "0345-1234567",
        "0345 1234567",
        "+92 345 1234567",
        "+92-345-123-4567",
        "  03451234567\n",
    ],
)
def test_every_accepted_msisdn_form_normalises_to_923(text: str) -> None:
    """The three documented forms, with spaces and dashes, all become 923451234567."""
    assert normalize_msisdn(text) == "923451234567"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3451234567",  # no 0 or country code
        "0345123456",  # one digit short
        "034512345678",  # one digit long
        "02134567890",  # a landline (Karachi), not a mobile number
        "+92 21 34567890",
        "00923451234567",  # international prefix 00 is not one of the forms
        "+913451234567",  # another country
        "0345.1234567",
        "0345_1234567",
        "(0345) 1234567",
        "٠٣٤٥١٢٣٤٥٦٧",  # Arabic-Indic digits match \d but are not accepted
        "0345123456７",  # a fullwidth digit
        "+92345123456a",
    ],
)
def test_anything_else_is_refused_naming_the_accepted_forms(text: str) -> None:
    """A refused number raises ValueError whose message lists the accepted forms, not the input."""
    with pytest.raises(ValueError) as refused:
        normalize_msisdn(text)
    assert MSISDN_FORMS in str(refused.value)
    if text.strip():
        assert text.strip() not in str(refused.value)


@pytest.mark.parametrize("text", ["1730112345671", "17301-1234567-1", " 17301-1234567-1 "])
def test_cnic_with_or_without_dashes_normalises_to_13_digits(text: str) -> None:
    """Both CNIC forms give the same 13 digits."""
    assert normalize_cnic(text) == "1730112345671"


@pytest.mark.parametrize(
    "text",
    ["173011234567", "17301123456712", "1730-11234567-1", "17301-1234567-12", "17301 1234567 1", "17301-12345671", ""],
)
def test_malformed_cnic_is_refused_naming_the_accepted_forms(text: str) -> None:
    """Wrong length or dashes in the wrong places: ValueError naming the two CNIC forms."""
    with pytest.raises(ValueError, match=re.escape(CNIC_FORMS)):
        normalize_cnic(text)


@given(subscriber_digits)
def test_every_form_of_one_number_gives_one_alias(digits: str) -> None:
    """03…, +923… and 923… (and dashed) of any valid number give the same token, stable per key."""
    forms = [f"0{digits}", f"+92{digits}", f"92{digits}", f"0{digits[:3]}-{digits[3:]}"]
    tokens = {alias_token(KEY, form) for form in forms}
    assert len(tokens) == 1
    assert tokens == {alias_token(KEY, f"0{digits}")}


@given(subscriber_digits)
def test_alias_is_a_contract_token_that_hides_the_number(digits: str) -> None:
    """rst_ + 32 hex, valid as a contract token, and neither the number nor its tail appears in it."""
    token = alias_token(KEY, f"0{digits}")
    assert re.fullmatch(r"rst_[0-9a-f]{32}", token)
    assert re.fullmatch(TOKEN_PATTERN, token)
    for shown in (digits, f"92{digits}", digits[-7:]):
        assert shown not in token


@given(subscriber_digits)
def test_tokens_differ_across_keys(digits: str) -> None:
    """Another deployment key gives other tokens for the same number."""
    assert alias_token(KEY, f"0{digits}") != alias_token(OTHER_KEY, f"0{digits}")
    assert holder_token(KEY, f"0{digits}") != holder_token(OTHER_KEY, f"0{digits}")


@given(subscriber_digits, st.data())
def test_distinct_numbers_give_distinct_aliases(digits: str, data: st.DataObject) -> None:
    """Two different mobile numbers never share an alias."""
    other = data.draw(subscriber_digits.filter(lambda d: d != digits))
    assert alias_token(KEY, f"0{digits}") != alias_token(KEY, f"0{other}")


@given(subscriber_digits)
def test_alias_and_holder_token_of_one_msisdn_differ(digits: str) -> None:
    """The alias domain and the holder domain are separated: one number, two unrelated tokens."""
    alias = alias_token(KEY, f"0{digits}")
    holder = holder_token(KEY, f"0{digits}")
    assert alias[4:] != holder[4:]


@given(cnic_digits)
def test_holder_token_of_a_cnic_is_a_valid_holder_token(digits: str) -> None:
    """hld_ + 32 hex, accepted by the contract's HolderToken, stable for both CNIC forms, no digits shown."""
    token = holder_token(KEY, digits)
    assert re.fullmatch(r"hld_[0-9a-f]{32}", token)
    assert HOLDER_TOKEN.validate_python(token) == token
    assert holder_token(KEY, f"{digits[:5]}-{digits[5:12]}-{digits[12]}") == token
    assert digits not in token and digits[-7:] not in token


@given(st.from_regex(r"923[0-9]{9}", fullmatch=True))
def test_cnic_and_msisdn_domains_never_collide(msisdn: str) -> None:
    """A CNIC whose digits contain an MSISDN's digits still gets another token (domain separation)."""
    cnic = "1" + msisdn
    assert holder_token(KEY, cnic) != holder_token(KEY, msisdn)


def test_holder_token_refuses_what_is_neither_cnic_nor_msisdn() -> None:
    """Neither shape: ValueError naming both accepted shapes."""
    with pytest.raises(ValueError) as refused:
        holder_token(KEY, "12345")
    assert CNIC_FORMS in str(refused.value) and MSISDN_FORMS in str(refused.value)


def test_a_short_key_is_refused() -> None:
    """A key under 32 bytes is a programming error, not a weaker token."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        alias_token(b"short", "03451234567")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        holder_token(b"short", "1730112345671")


def test_tokens_are_fixed_for_a_fixed_key() -> None:
    """Regression pin: the derivation (domains, HMAC, truncation) must not change silently, or every
    stored alias and holder token would stop matching."""
    assert alias_token(KEY, "03451234567") == alias_token(KEY, "923451234567")
    pinned = {
        "alias": alias_token(KEY, "03451234567"),
        "holder_msisdn": holder_token(KEY, "03451234567"),
        "holder_cnic": holder_token(KEY, "17301-1234567-1"),
    }
    assert pinned == PINNED_TOKENS
