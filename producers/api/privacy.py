"""Keyed tokens for phone numbers (MSISDN) and CNICs, so the API never keeps a raw one (issue 9, item 8).

A number given to the API is normalised, then replaced by an HMAC-SHA256 of it under the
deployment's secret key (infra/secrets.py) before it is stored, logged or published. The same
number always gives the same token in one deployment — so a Raast alias resolves and a holder is
recognised — while without the key a token cannot be turned back into the number, even though
Pakistan's mobile numbers (10^9 of them) could be enumerated with an unkeyed hash in minutes.

Each token hashes a domain-separated message (`kpsandbox/<use>/<kind>:<digits>`): the alias and
the holder token of one MSISDN differ, and a CNIC never collides with an MSISDN. Tokens match the
contract's TOKEN_PATTERN (`schemas/envelope.py`): a short prefix and 32 hex digits.

Pure: no I/O; the key is passed in. A refused number's ValueError names the accepted forms but
never repeats the input, so the message can be returned or logged as is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

MSISDN_FORMS: Final = "03XXXXXXXXX, +923XXXXXXXXX or 923XXXXXXXXX (spaces and dashes allowed)"
CNIC_FORMS: Final = "13 digits, XXXXXXXXXXXXX or XXXXX-XXXXXXX-X"
# Explicit [0-9]: `\d` would also accept Arabic-Indic and other Unicode digits.
MSISDN_SEPARATORS: Final = re.compile(r"[ -]")
MSISDN_SHAPE: Final = re.compile(r"(?:\+92|92|0)(3[0-9]{9})")
CNIC_SHAPE: Final = re.compile(r"[0-9]{13}|[0-9]{5}-[0-9]{7}-[0-9]")
COUNTRY_CODE: Final = "92"

KEY_BYTES_MIN: Final = 32
TOKEN_HEX_CHARS: Final = 32  # 128 bits: the most TOKEN_PATTERN allows
ALIAS_PREFIX: Final = "rst_"  # a Raast alias, as the simulation's aliases
HOLDER_PREFIX: Final = "hld_"
ALIAS_DOMAIN: Final = b"kpsandbox/alias/msisdn:"
HOLDER_MSISDN_DOMAIN: Final = b"kpsandbox/holder/msisdn:"
HOLDER_CNIC_DOMAIN: Final = b"kpsandbox/holder/cnic:"


def normalize_msisdn(text: str) -> str:
    """A Pakistani mobile number as `923XXXXXXXXX` (12 digits). Accepts MSISDN_FORMS; anything
    else is a ValueError naming the accepted forms."""
    match = MSISDN_SHAPE.fullmatch(MSISDN_SEPARATORS.sub("", text.strip()))
    if match is None:
        raise ValueError(f"not a Pakistani mobile number: write it as {MSISDN_FORMS}")
    return COUNTRY_CODE + match.group(1)


def normalize_cnic(text: str) -> str:
    """A CNIC as its 13 digits. Accepts CNIC_FORMS; anything else is a ValueError naming them."""
    stripped = text.strip()
    if not CNIC_SHAPE.fullmatch(stripped):
        raise ValueError(f"not a CNIC: write it as {CNIC_FORMS}")
    return stripped.replace("-", "")


def _token(key: bytes, prefix: str, domain: bytes, digits: str) -> str:
    if len(key) < KEY_BYTES_MIN:
        raise ValueError(f"a token key has at least {KEY_BYTES_MIN} bytes, this one {len(key)}")
    digest = hmac.new(key, domain + digits.encode("ascii"), hashlib.sha256).hexdigest()
    return prefix + digest[:TOKEN_HEX_CHARS]


def alias_token(key: bytes, msisdn: str) -> str:
    """The Raast alias token (`rst_` + 32 hex) of a mobile number in any of MSISDN_FORMS."""
    return _token(key, ALIAS_PREFIX, ALIAS_DOMAIN, normalize_msisdn(msisdn))


def holder_token(key: bytes, cnic_or_msisdn: str) -> str:
    """The holder token (`hld_` + 32 hex) of a person identified by a CNIC (CNIC_FORMS) or a
    mobile number (MSISDN_FORMS). One person's CNIC and MSISDN give two different tokens."""
    try:
        domain, digits = HOLDER_CNIC_DOMAIN, normalize_cnic(cnic_or_msisdn)
    except ValueError:
        try:
            domain, digits = HOLDER_MSISDN_DOMAIN, normalize_msisdn(cnic_or_msisdn)
        except ValueError:
            raise ValueError(f"neither a CNIC ({CNIC_FORMS}) nor a mobile number ({MSISDN_FORMS})") from None
    return _token(key, HOLDER_PREFIX, domain, digits)
