"""IBANs the API makes for bank accounts carry valid mod-97 check digits (producers/api/iban.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from producers.api.iban import check_digits, iban_is_valid, make_iban
from schemas.accounts import Iban

# The IBAN registry's (ISO 13616) example for Pakistan.
KNOWN_GOOD: tuple[str, ...] = ("PK36SCBL0000001123456702",)
IBAN_ADAPTER = TypeAdapter(Iban)


def test_known_pakistani_ibans_check_out() -> None:
    """Published IBANs pass the check, and check_digits recomputes their two digits."""
    for iban in KNOWN_GOOD:
        assert iban_is_valid(iban), iban
        assert check_digits(bank_code=iban[4:8], account_number=iban[8:]) == iban[2:4]


@given(
    st.integers(min_value=0, max_value=10**16 - 1),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4),
)
def test_every_made_iban_is_valid_and_fits_the_contract(number: int, bank: str) -> None:
    """Any account number at any bank code gives an IBAN of the contract's shape with a mod-97 remainder of 1."""
    iban = make_iban(bank_code=bank, account_number=number)
    assert iban_is_valid(iban) and len(iban) == 24 and iban[4:8] == bank and int(iban[8:]) == number
    assert int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1
    assert IBAN_ADAPTER.validate_python(iban) == iban  # the shape account.opened accepts


@given(
    st.integers(min_value=0, max_value=10**16 - 1),
    st.sampled_from([2, 3, *range(8, 24)]),
    st.integers(min_value=1, max_value=9),
)
def test_a_changed_digit_is_caught(number: int, position: int, shift: int) -> None:
    """Changing any one digit — a check digit or one of the account number's — makes the IBAN invalid."""
    iban = make_iban(bank_code="SBOX", account_number=number)
    changed = iban[:position] + str((int(iban[position]) + shift) % 10) + iban[position + 1 :]
    assert not iban_is_valid(changed), changed


def test_bad_bank_codes_and_numbers_are_refused() -> None:
    """A bank code that is not 4 capitals, or a number past 16 digits, is a ValueError; malformed IBANs are invalid."""
    for code in ("SBO", "sbox", "SB0X", "SBOXX"):
        with pytest.raises(ValueError, match="bank code"):
            make_iban(bank_code=code, account_number=1)
    for number in (-1, 10**16):
        with pytest.raises(ValueError, match="16 digits"):
            make_iban(bank_code="SBOX", account_number=number)
    for text in ("", "PK36SCBL000000112345670", "DE36SCBL0000001123456702", "pk36scbl0000001123456702"):
        assert not iban_is_valid(text), text
