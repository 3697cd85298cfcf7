"""Pakistani IBANs for the sandbox's bank accounts: `PK`, two mod-97 check digits, a 4-letter bank
code and a 16-digit account number (ISO 13616, as SBP's IBAN standard lays it out).

Pure: the account number is passed in, so the caller chooses where randomness comes from.
"""

from __future__ import annotations

import re
from typing import Final

COUNTRY: Final = "PK"
BANK_CODE_PATTERN: Final = re.compile(r"[A-Z]{4}")
ACCOUNT_NUMBER_DIGITS: Final = 16
IBAN_PATTERN: Final = re.compile(r"PK[0-9]{2}[A-Z]{4}[0-9]{16}")
MOD: Final = 97
CHECK_BASE: Final = 98  # check digits = 98 - (number mod 97): the whole IBAN is then ≡ 1 (mod 97)


def _as_number(text: str) -> int:
    """ISO 13616's digits for letters: A=10 … Z=35, digits as they are."""
    return int("".join(str(int(char, 36)) for char in text))


def check_digits(*, bank_code: str, account_number: str) -> str:
    """The two check digits of the IBAN for this bank code and account number."""
    remainder = _as_number(bank_code + account_number + COUNTRY + "00") % MOD
    return f"{CHECK_BASE - remainder:02d}"


def make_iban(*, bank_code: str, account_number: int) -> str:
    """The IBAN of an account number (0 ≤ n < 10^16) at a bank with a 4-letter code."""
    if not BANK_CODE_PATTERN.fullmatch(bank_code):
        raise ValueError(f"a bank code is 4 capital letters, not {bank_code!r}")
    if not 0 <= account_number < 10**ACCOUNT_NUMBER_DIGITS:
        raise ValueError(f"an account number has at most {ACCOUNT_NUMBER_DIGITS} digits")
    digits = f"{account_number:0{ACCOUNT_NUMBER_DIGITS}d}"
    iban = COUNTRY + check_digits(bank_code=bank_code, account_number=digits) + bank_code + digits
    assert iban_is_valid(iban), iban
    return iban


def iban_is_valid(iban: str) -> bool:
    """True when `iban` has the Pakistani shape and its check digits are right (mod 97 = 1)."""
    return bool(IBAN_PATTERN.fullmatch(iban)) and _as_number(iban[4:] + iban[:4]) % MOD == 1
