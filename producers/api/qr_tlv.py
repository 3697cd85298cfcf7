"""EMVCo QR data objects, the layer under `qr.py`: tag-length-value objects written and read
back, the CRC-16/CCITT-FALSE checksum of tag 63, and the errors a payload can raise.

Nothing here knows what a tag means; `qr.py` is the sandbox's Pakistan QR profile on top.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal

TAG_CRC: Final = "63"
CRC_OBJECT_PREFIX: Final = TAG_CRC + "04"  # tag 63, four characters: the last object of a payload
VALUE_CHARS_MAX: Final = 99  # a two-digit length
_CRC_PATTERN: Final = re.compile(r"^[0-9A-Fa-f]{4}$")

QrErrorCode = Literal[
    "qr_malformed",  # not a TLV payload, a wrong length, a missing or ill-formed tag
    "qr_crc_missing",  # no "6304" + four hex digits at the end
    "qr_crc_mismatch",  # the checksum does not match: damaged or edited
    "qr_currency_unsupported",  # tag 53 is not 586 (PKR)
    "qr_country_unsupported",  # tag 58 is not PK
    "qr_scheme_unsupported",  # no merchant account template of the sandbox
    "qr_expired",  # a dynamic code past its expiry
    "qr_field_invalid",  # a value given to the encoder breaks a limit (`field` names it)
]


class QrError(Exception):
    """A QR payload that cannot be made or paid, with a stable `code` and a message saying why."""

    def __init__(self, code: QrErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code: QrErrorCode = code
        self.message = message
        self.field = field  # the QrPayload field at fault, for the API's problem `param`

    def __repr__(self) -> str:
        return f"QrError({self.code!r}, {self.message!r})"


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def check_crc(text: str) -> None:
    """Raises `qr_crc_missing` or `qr_crc_mismatch` unless `text` ends in a CRC object that matches."""
    if len(text) < len(CRC_OBJECT_PREFIX) + 4 or not text[:-4].endswith(CRC_OBJECT_PREFIX):
        raise QrError("qr_crc_missing", "the payload does not end with tag 63 (CRC): '6304' and four hex digits")
    written = text[-4:]
    if not _CRC_PATTERN.fullmatch(written):
        raise QrError("qr_crc_missing", f"tag 63 (CRC) '{written}' is not four hex digits")
    expected = crc16_ccitt_false(text[:-4].encode("ascii"))
    if int(written, 16) != expected:
        raise QrError(
            "qr_crc_mismatch",
            f"the CRC is {written.upper()} but the payload hashes to {expected:04X}: "
            "the code is damaged or was edited; scan the merchant's code again",
        )


def write_objects(objects: Sequence[tuple[str, str | None]]) -> str:
    """Concatenates tag-length-value objects, leaving out the absent ones."""
    parts = []
    for tag, value in objects:
        if value is None:
            continue
        # Every caller's limits keep a value within 99 characters; this guards the format itself.
        assert 0 < len(value) <= VALUE_CHARS_MAX, f"tag {tag} value of {len(value)} characters"
        parts.append(f"{tag}{len(value):02d}{value}")
    return "".join(parts)


def read_objects(text: str, where: str) -> dict[str, str]:
    """Splits `text` into its data objects, in order; each tag at most once, every character used."""
    objects: dict[str, str] = {}
    position = 0
    while position < len(text):  # bounded: each pass consumes at least five characters
        header = text[position : position + 4]
        if len(header) < 4 or not header.isdigit():
            raise QrError("qr_malformed", f"{where}: expected a two-digit tag and length at character {position}")
        tag, length = header[:2], int(header[2:])
        value = text[position + 4 : position + 4 + length]
        if length == 0 or len(value) < length:
            raise QrError("qr_malformed", f"{where}: tag {tag} says {length} characters but has {len(value)}")
        if tag in objects:
            raise QrError("qr_malformed", f"{where}: tag {tag} appears twice")
        objects[tag] = value
        position += 4 + length
    return objects
