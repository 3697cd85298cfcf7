"""Identifiers that look real but reveal nothing: tokens, IBANs, Raast aliases and event ids.

Every identifier is a pure function of a seed-derived key and an agent's index, so no identifier
is ever stored per agent (a million citizens cost no strings) and two runs with the same seed
name everyone the same way. Tokens come from a keyed 64-bit bijection, so distinct indices can
never collide.
"""

from __future__ import annotations

import random
from typing import Final

MASK64: Final = (1 << 64) - 1
_UUID_VERSION_CLEAR: Final = ~(0xF << 76) & ((1 << 128) - 1)
_UUID_VARIANT_CLEAR: Final = ~(0x3 << 62) & ((1 << 128) - 1)
_UUID_V4_BITS: Final = (0x4 << 76) | (0x2 << 62)
_UUID_CLEAR: Final = _UUID_VERSION_CLEAR & _UUID_VARIANT_CLEAR

# Pakistani bank codes as they appear in IBANs (4 letters; ISO 13616 BBAN prefix).
BANK_CODES: Final[tuple[str, ...]] = (
    "HABB",  # Habib Bank
    "MUCB",  # MCB Bank
    "NBPA",  # National Bank of Pakistan
    "UNIL",  # United Bank
    "ABPA",  # Allied Bank
    "KHYB",  # Bank of Khyber
    "MEZN",  # Meezan Bank
    "SCBL",  # Standard Chartered
    "ALFH",  # Bank Alfalah
    "BAHL",  # Bank AL Habib
)


def mix64(value: int) -> int:
    """A bijection on 64-bit integers (splitmix64's finaliser): distinct inputs, distinct outputs."""
    z = value & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def derive_key(seed: int, purpose: str) -> int:
    """A 64-bit key for one purpose (one token family), derived only from the seed."""
    return random.Random(f"{seed}:{purpose}").getrandbits(64)


def token(prefix: str, key: int, index: int) -> str:
    """A tokenised id such as 'wal_3f9c0a1b2c3d4e5f'; unique per (key, index)."""
    return f"{prefix}_{mix64(index ^ key):016x}"


def format_uuid(bits: int) -> str:
    """Formats 128 random bits as a version-4 UUID string (sets the version and variant bits)."""
    # bytes.hex() is the cheapest way to 32 lowercase hex digits; this runs once per event.
    h = ((bits & _UUID_CLEAR) | _UUID_V4_BITS).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class IdSource:
    """Event and correlation ids drawn from their own seeded stream, so ids derive from the seed."""

    __slots__ = ("_bits",)

    def __init__(self, seed: int) -> None:
        self._bits = random.Random(f"{seed}:event-ids").getrandbits

    def next_uuid(self) -> str:
        """The next id as a canonical UUID string."""
        # format_uuid, inlined: this runs once per event.
        h = ((self._bits(128) & _UUID_CLEAR) | _UUID_V4_BITS).to_bytes(16, "big").hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iban_check_digits(country: str, bban: str) -> str:
    """The two ISO 13616 check digits for a country code and BBAN."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def is_valid_iban(iban: str) -> bool:
    """True when the IBAN passes the ISO 13616 mod-97 check."""
    rearranged = iban[4:] + iban[:4]
    if not rearranged.isalnum():
        return False
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


# 10**12 is only divisible by 2 and 5, so any multiplier coprime to 10 is a bijection on it.
_ACCOUNT_RANGE: Final = 10**12
_ACCOUNT_MULTIPLIER: Final = 7_919_572_933


def pakistani_iban(key: int, index: int) -> str:
    """A valid Pakistani IBAN (24 characters, mod-97) unique per index below 10**12."""
    mixed = mix64(index ^ key)
    bank = BANK_CODES[mixed % len(BANK_CODES)]
    branch = (mixed >> 8) % 10_000
    number = (index * _ACCOUNT_MULTIPLIER + key) % _ACCOUNT_RANGE
    bban = f"{bank}{branch:04d}{number:012d}"
    return f"PK{iban_check_digits('PK', bban)}{bban}"


def mobile_number(key: int, index: int) -> str:
    """A Pakistani mobile number '03XX-XXXXXXX' unique per index below 10**9; never emitted in clear."""
    number = (index * _ACCOUNT_MULTIPLIER + key) % 10**9
    operator = 300 + number // 10**7  # 0300..0399
    return f"0{operator}-{number % 10**7:07d}"


def raast_alias_token(key: int, index: int) -> str:
    """The tokenised Raast alias of a citizen's mobile number: 'rst_' + 16 hex digits."""
    digits = int(mobile_number(key, index).replace("-", ""))
    return f"rst_{mix64(digits ^ key):016x}"
