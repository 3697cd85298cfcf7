"""Which magic behaviour a mobile number asks for (schemas/api/magic.py has the table).

Apart from producers/api/magic.py, which opens the magic accounts, because opening an ordinary
account must also refuse these numbers (producers/api/accounts.py), and magic.py builds on accounts.
"""

from __future__ import annotations

from typing import Final

from producers.api.privacy import normalize_msisdn
from schemas.api.magic import (
    PAYEE_DELAYED_SUCCESS,
    PAYEE_INSUFFICIENT_FUNDS,
    PAYEE_LIMIT_EXCEEDED,
    PAYEE_NO_ANSWER,
    PAYEE_NOT_FOUND,
    PAYER_DECLINES_REQUEST,
    MagicBehaviour,
)

# The magic payee numbers, normalised as privacy.normalize_msisdn writes them, → their behaviour.
MAGIC_PAYEES: Final[dict[str, MagicBehaviour]] = {
    normalize_msisdn(PAYEE_NOT_FOUND): "account_not_found",
    normalize_msisdn(PAYEE_INSUFFICIENT_FUNDS): "insufficient_funds",
    normalize_msisdn(PAYEE_LIMIT_EXCEEDED): "payee_limit_exceeded",
    normalize_msisdn(PAYEE_DELAYED_SUCCESS): "delayed_success",
    normalize_msisdn(PAYEE_NO_ANSWER): "no_answer",
}
MAGIC_NUMBERS: Final[dict[MagicBehaviour, str]] = {
    "account_not_found": PAYEE_NOT_FOUND,
    "insufficient_funds": PAYEE_INSUFFICIENT_FUNDS,
    "payee_limit_exceeded": PAYEE_LIMIT_EXCEEDED,
    "delayed_success": PAYEE_DELAYED_SUCCESS,
    "no_answer": PAYEE_NO_ANSWER,
}
RESERVED_NUMBERS: Final = frozenset({*MAGIC_PAYEES, normalize_msisdn(PAYER_DECLINES_REQUEST)})


def payee_behaviour(msisdn: str | None) -> MagicBehaviour | None:
    """The magic behaviour a payee alias asks for; None for any other number (or no number)."""
    if msisdn is None:
        return None
    try:
        return MAGIC_PAYEES.get(normalize_msisdn(msisdn))
    except ValueError:  # not a mobile number at all: the payment's own check answers it
        return None


def is_magic_number(msisdn: str) -> bool:
    """True for a number reserved for magic values, which no account may be opened with."""
    try:
        return normalize_msisdn(msisdn) in RESERVED_NUMBERS
    except ValueError:
        return False
