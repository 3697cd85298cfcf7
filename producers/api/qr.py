"""Pakistan QR payloads for the sandbox: encode, parse and verify, and render as PNG.

SBP's Pakistan QR standard (March 2022; Raast P2M since December 2023) is built on EMVCo's
QR Code Specification for Payment Systems, Merchant-Presented Mode (EMV QRCPS-MPM). A payload
is a string of data objects, each a two-digit tag, a two-digit length and that many characters:

    00 payload format "01"        01 point of initiation: "11" static, "12" dynamic
    26 merchant account template  52 merchant category code (ISO 18245)
    53 currency "586" (PKR)       54 amount in rupees, "250.00" (dynamic only)
    58 country "PK"               59 merchant name       60 merchant city
    62 additional data (01 bill number, 05 reference)    63 CRC-16/CCITT-FALSE, last

SBP shares the layout of the Raast merchant account template only with banks, so the sandbox
uses its own template in tag 26, named by its globally unique identifier `pk.kpsandbox` as
EMVCo lets a scheme do: sub-tag 01 is the merchant's account id and sub-tag 02 the expiry of a
dynamic code (UTC, `YYYYMMDDhhmmss`), the way Singapore's PayNow keeps its expiry date in its own
template. Neither EMVCo's additional data sub-tags nor SBP's (62-50 due date, 62-51 amount after
the due date, a bill's late fee) mean "this code expires", so the expiry is not put in tag 62.

Pure: no I/O and no clock. Whoever checks an expiry passes `now`. `docs/api/qr.md` has the
tags, an example and the sources. The tag-length-value layer, the CRC and the errors are in
`qr_tlv.py` (QrError, check_crc, crc16_ccitt_false).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NoReturn

import segno

from producers.api.qr_tlv import (
    CRC_OBJECT_PREFIX,
    TAG_CRC,
    QrError,
    check_crc,
    crc16_ccitt_false,
    read_objects,
    write_objects,
)
from schemas.accounts import MerchantCategory
from schemas.envelope import TOKEN_PATTERN
from schemas.money import AMOUNT_PAISA_MAX, PAISA_PER_RUPEE

# Root data objects (EMV QRCPS-MPM v1.1, section 4.2 ff.).
TAG_PAYLOAD_FORMAT: Final = "00"
TAG_POINT_OF_INITIATION: Final = "01"
TAG_MERCHANT_ACCOUNT: Final = "26"  # the first of the templates 26-51 EMVCo leaves to other schemes
TAG_MERCHANT_CATEGORY_CODE: Final = "52"
TAG_CURRENCY: Final = "53"
TAG_AMOUNT: Final = "54"
TAG_COUNTRY: Final = "58"
TAG_MERCHANT_NAME: Final = "59"
TAG_MERCHANT_CITY: Final = "60"
TAG_ADDITIONAL_DATA: Final = "62"
# 63 (the CRC) is qr_tlv.TAG_CRC.
MERCHANT_ACCOUNT_TAGS: Final = tuple(f"{tag:02d}" for tag in range(26, 52))
# Tags every payload must carry besides 00 and 63 (EMVCo makes 01 optional; the sandbox always writes it).
REQUIRED_TAGS: Final = {
    TAG_POINT_OF_INITIATION: "point of initiation",
    TAG_MERCHANT_CATEGORY_CODE: "merchant category code",
    TAG_CURRENCY: "currency",
    TAG_COUNTRY: "country",
    TAG_MERCHANT_NAME: "merchant name",
    TAG_MERCHANT_CITY: "merchant city",
}

# Sub-tags of the sandbox's merchant account template (tag 26).
SUB_TAG_GUID: Final = "00"  # EMVCo: every template 26-51 starts with its scheme's identifier
SUB_TAG_ACCOUNT: Final = "01"
SUB_TAG_EXPIRES_AT: Final = "02"
# Sub-tags of the additional data template (tag 62), as EMVCo defines them.
SUB_TAG_BILL_NUMBER: Final = "01"
SUB_TAG_REFERENCE: Final = "05"

SANDBOX_GUID: Final = "pk.kpsandbox"  # a reverse domain name, one of EMVCo's three GUID forms
PAYLOAD_FORMAT: Final = "01"
POINT_OF_INITIATION_STATIC: Final = "11"
POINT_OF_INITIATION_DYNAMIC: Final = "12"
CURRENCY_PKR: Final = "586"  # ISO 4217 numeric
COUNTRY_PK: Final = "PK"  # ISO 3166-1 alpha-2

# Bounds from EMV QRCPS-MPM: a data object holds at most 99 characters, a payload at most 512.
PAYLOAD_CHARS_MAX: Final = 512
MERCHANT_NAME_CHARS_MAX: Final = 25
MERCHANT_CITY_CHARS_MAX: Final = 15
ADDITIONAL_DATA_CHARS_MAX: Final = 25  # bill number, reference label
AMOUNT_CHARS_MAX: Final = 13  # including the decimal point
# The largest amount tag 54 can carry, "9999999999.99", is one paisa under the contract's maximum.
QR_AMOUNT_PAISA_MAX: Final = min(AMOUNT_PAISA_MAX, 10 ** (AMOUNT_CHARS_MAX - 3) * PAISA_PER_RUPEE - 1)
EXPIRES_AT_FORMAT: Final = "%Y%m%d%H%M%S"  # UTC; fourteen digits for the years below
EXPIRES_AT_YEAR_MIN: Final = 2000
EXPIRES_AT_YEAR_MAX: Final = 9999

# ISO 18245 codes for the contract's merchant categories, so the API can fill tag 52 itself.
MCC_BY_MERCHANT_CATEGORY: Final[dict[MerchantCategory, str]] = {
    "kiryana": "5411",  # grocery stores, supermarkets
    "pharmacy": "5912",  # drug stores and pharmacies
    "transport": "4111",  # local and suburban passenger transportation
    "restaurant": "5812",  # eating places, restaurants
    "utility": "4900",  # utilities: electric, gas, water, sanitary
    "ecommerce": "5999",  # miscellaneous and specialty retail
    "other": "5999",
}

# PNG rendering: error correction level M at least (segno raises it for free when the symbol has
# room, so a scuffed sticker still scans). Eight pixels a module and the standard quiet zone.
QR_ERROR_LEVEL: Final = "m"
PNG_MODULE_PIXELS: Final = 8
PNG_QUIET_ZONE_MODULES: Final = 4

_ANS_PATTERN: Final = re.compile(r"^[\x20-\x7e]+$")  # EMVCo "ans": printable ASCII
_TOKEN_PATTERN: Final = re.compile(TOKEN_PATTERN)
_MCC_PATTERN: Final = re.compile(r"^[0-9]{4}$")
_AMOUNT_PATTERN: Final = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$")
_EXPIRES_AT_PATTERN: Final = re.compile(r"^[0-9]{14}$")


@dataclass(frozen=True, slots=True)
class QrPayload:
    """What a sandbox QR code says: whom to pay and, when dynamic, how much, for what, until when.

    Static (point of initiation 11): the merchant's code on the counter, no amount, no expiry.
    Dynamic (12): one checkout; carries `amount` in paisa and may carry an expiry. Both may carry
    a bill number and a reference. `expires_at` is kept in UTC to the second (the payload's
    precision); a finer or non-UTC time is converted on construction.
    """

    merchant_account: str
    merchant_name: str
    merchant_city: str
    merchant_category_code: str
    amount: int | None = None
    bill_number: str | None = None
    reference: str | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        check_payload_fields(self)
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", self.expires_at.astimezone(UTC).replace(microsecond=0))

    @property
    def is_dynamic(self) -> bool:
        """A code for one payment of a set amount (tag 01 = 12), not the counter's reusable one."""
        return self.amount is not None


def check_payload_fields(qr: QrPayload) -> None:
    """Raises `qr_field_invalid` naming the first field that the payload format cannot carry."""
    if not isinstance(qr.merchant_account, str) or not _TOKEN_PATTERN.fullmatch(qr.merchant_account):
        _invalid("merchant_account", f"must be a sandbox account id like 'acc_3f9c0a1b' ({TOKEN_PATTERN})")
    _check_text("merchant_name", qr.merchant_name, MERCHANT_NAME_CHARS_MAX)
    _check_text("merchant_city", qr.merchant_city, MERCHANT_CITY_CHARS_MAX)
    if not isinstance(qr.merchant_category_code, str) or not _MCC_PATTERN.fullmatch(qr.merchant_category_code):
        _invalid("merchant_category_code", "must be four digits (ISO 18245), e.g. '5411'")
    if qr.amount is not None and (
        not isinstance(qr.amount, int) or isinstance(qr.amount, bool) or not 0 < qr.amount <= QR_AMOUNT_PAISA_MAX
    ):
        _invalid("amount", f"must be an integer count of paisa from 1 to {QR_AMOUNT_PAISA_MAX}")
    if qr.bill_number is not None:
        _check_text("bill_number", qr.bill_number, ADDITIONAL_DATA_CHARS_MAX)
    if qr.reference is not None:
        _check_text("reference", qr.reference, ADDITIONAL_DATA_CHARS_MAX)
    if qr.expires_at is not None:
        if not isinstance(qr.expires_at, datetime) or qr.expires_at.utcoffset() is None:
            _invalid("expires_at", "must be a timezone-aware datetime")
        try:
            year = qr.expires_at.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not EXPIRES_AT_YEAR_MIN <= year <= EXPIRES_AT_YEAR_MAX:
            _invalid("expires_at", f"must fall in the years {EXPIRES_AT_YEAR_MIN} to {EXPIRES_AT_YEAR_MAX} (UTC)")
        if qr.amount is None:
            _invalid("expires_at", "only a dynamic code (one with an amount) expires; a static code is reusable")


def check_not_expired(qr: QrPayload, *, now: datetime) -> None:
    """Raises `qr_expired` when a dynamic code's expiry is at or before `now` (timezone-aware)."""
    if qr.expires_at is not None and now >= qr.expires_at:
        raise QrError("qr_expired", f"this QR code expired at {qr.expires_at.isoformat()}; ask for a new one")


def format_amount(paisa: int) -> str:
    """Writes paisa as tag 54 wants rupees: two decimals, no separators; 25000 -> '250.00'."""
    if isinstance(paisa, bool) or not isinstance(paisa, int) or not 0 < paisa <= QR_AMOUNT_PAISA_MAX:
        raise QrError("qr_field_invalid", f"amount must be 1 to {QR_AMOUNT_PAISA_MAX} paisa", field="amount")
    rupees, rest = divmod(paisa, PAISA_PER_RUPEE)
    return f"{rupees}.{rest:02d}"


def parse_amount(text: str) -> int:
    """Reads tag 54 back into paisa without a float: '250.00' -> 25000; '250' and '250.5' too."""
    match = _AMOUNT_PATTERN.fullmatch(text)
    if match is None or len(text) > AMOUNT_CHARS_MAX:
        raise QrError("qr_malformed", f"tag 54 (amount) '{text}' is not rupees with at most two decimals")
    rupees, fraction = match.group(1), (match.group(2) or ".")[1:]
    paisa = int(rupees) * PAISA_PER_RUPEE + int(fraction.ljust(2, "0"))
    if paisa == 0:
        raise QrError("qr_malformed", "tag 54 (amount) is zero; a dynamic code asks for a positive amount")
    return paisa


def encode_payload(qr: QrPayload) -> str:
    """The payload text of `qr`: tags in ascending order, the CRC last and in upper-case hex."""
    account = [(SUB_TAG_GUID, SANDBOX_GUID), (SUB_TAG_ACCOUNT, qr.merchant_account)]
    if qr.expires_at is not None:
        account.append((SUB_TAG_EXPIRES_AT, qr.expires_at.strftime(EXPIRES_AT_FORMAT)))
    additional = [(SUB_TAG_BILL_NUMBER, qr.bill_number), (SUB_TAG_REFERENCE, qr.reference)]
    objects: list[tuple[str, str | None]] = [
        (TAG_PAYLOAD_FORMAT, PAYLOAD_FORMAT),
        (TAG_POINT_OF_INITIATION, POINT_OF_INITIATION_DYNAMIC if qr.is_dynamic else POINT_OF_INITIATION_STATIC),
        (TAG_MERCHANT_ACCOUNT, write_objects(account)),
        (TAG_MERCHANT_CATEGORY_CODE, qr.merchant_category_code),
        (TAG_CURRENCY, CURRENCY_PKR),
        (TAG_AMOUNT, None if qr.amount is None else format_amount(qr.amount)),
        (TAG_COUNTRY, COUNTRY_PK),
        (TAG_MERCHANT_NAME, qr.merchant_name),
        (TAG_MERCHANT_CITY, qr.merchant_city),
        (TAG_ADDITIONAL_DATA, write_objects(additional) or None),
    ]
    body = write_objects(objects) + CRC_OBJECT_PREFIX
    return body + f"{crc16_ccitt_false(body.encode('ascii')):04X}"


def parse_payload(text: str) -> QrPayload:
    """Reads and verifies a sandbox QR payload; raises QrError with a stable code when it cannot.

    Checks, in order: printable ASCII within 512 characters (`qr_malformed`), a CRC object at the
    end (`qr_crc_missing`) that matches (`qr_crc_mismatch`), the TLV structure and required tags
    (`qr_malformed`), currency 586 (`qr_currency_unsupported`), country PK
    (`qr_country_unsupported`), the sandbox's merchant account template (`qr_scheme_unsupported`).
    It does not look at the clock: call `check_not_expired` before paying.
    """
    if not isinstance(text, str) or not text or len(text) > PAYLOAD_CHARS_MAX or not _ANS_PATTERN.fullmatch(text):
        raise QrError("qr_malformed", f"a QR payload is 1 to {PAYLOAD_CHARS_MAX} printable ASCII characters")
    check_crc(text)
    root = read_objects(text, "the payload")
    if next(iter(root)) != TAG_PAYLOAD_FORMAT or root[TAG_PAYLOAD_FORMAT] != PAYLOAD_FORMAT:
        raise QrError("qr_malformed", f"the payload must start with tag 00 (payload format) = '{PAYLOAD_FORMAT}'")
    if list(root)[-1] != TAG_CRC:
        raise QrError("qr_malformed", "tag 63 (CRC) must be the last data object")
    for tag, name in REQUIRED_TAGS.items():
        if tag not in root:
            raise QrError("qr_malformed", f"tag {tag} ({name}) is missing")
    if root[TAG_CURRENCY] != CURRENCY_PKR:
        raise QrError(
            "qr_currency_unsupported",
            f"tag 53 (currency) is '{root[TAG_CURRENCY]}'; the sandbox takes only '{CURRENCY_PKR}' (PKR)",
        )
    if root[TAG_COUNTRY] != COUNTRY_PK:
        raise QrError(
            "qr_country_unsupported", f"tag 58 (country) is '{root[TAG_COUNTRY]}'; the sandbox takes only 'PK'"
        )
    account = _sandbox_account(root)
    amount = _amount(root)
    additional = read_objects(root[TAG_ADDITIONAL_DATA], "tag 62") if TAG_ADDITIONAL_DATA in root else {}
    try:
        return QrPayload(
            merchant_account=account.get(SUB_TAG_ACCOUNT, ""),
            merchant_name=root[TAG_MERCHANT_NAME],
            merchant_city=root[TAG_MERCHANT_CITY],
            merchant_category_code=root[TAG_MERCHANT_CATEGORY_CODE],
            amount=amount,
            bill_number=additional.get(SUB_TAG_BILL_NUMBER),
            reference=additional.get(SUB_TAG_REFERENCE),
            expires_at=_expires_at(account.get(SUB_TAG_EXPIRES_AT)),
        )
    except QrError as error:
        raise QrError("qr_malformed", f"the payload's {error.field} {error.message}") from error


def qr_symbol(text: str) -> segno.QRCode:
    """The QR symbol for a payload, always a full QR code (never Micro QR), error level M or better."""
    return segno.make_qr(text, error=QR_ERROR_LEVEL)


def render_png(text: str) -> bytes:
    """The payload drawn as a black-on-white PNG, in memory; pass a payload from `encode_payload`."""
    buffer = io.BytesIO()
    qr_symbol(text).save(buffer, kind="png", scale=PNG_MODULE_PIXELS, border=PNG_QUIET_ZONE_MODULES)
    return buffer.getvalue()


def _invalid(field: str, requirement: str) -> NoReturn:
    raise QrError("qr_field_invalid", f"{field} {requirement}", field=field)


def _check_text(field: str, value: object, chars_max: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= chars_max or not _ANS_PATTERN.fullmatch(value):
        _invalid(field, f"must be 1 to {chars_max} printable ASCII characters")
    elif value != value.strip():
        _invalid(field, "must not start or end with a space")


def _sandbox_account(root: dict[str, str]) -> dict[str, str]:
    """The sub-tags of the merchant account template whose identifier is the sandbox's."""
    for tag in MERCHANT_ACCOUNT_TAGS:
        if tag in root:
            template = read_objects(root[tag], f"tag {tag}")
            if template.get(SUB_TAG_GUID) == SANDBOX_GUID:
                return template
    raise QrError(
        "qr_scheme_unsupported",
        f"no merchant account template with identifier '{SANDBOX_GUID}' in tags 26-51: "
        "only codes made by this sandbox can be paid here",
    )


def _amount(root: dict[str, str]) -> int | None:
    """Tag 54 in paisa; present exactly when tag 01 says the code is dynamic."""
    initiation = root[TAG_POINT_OF_INITIATION]
    if initiation not in (POINT_OF_INITIATION_STATIC, POINT_OF_INITIATION_DYNAMIC):
        raise QrError("qr_malformed", f"tag 01 (point of initiation) is '{initiation}', not '11' or '12'")
    dynamic = initiation == POINT_OF_INITIATION_DYNAMIC
    if dynamic != (TAG_AMOUNT in root):
        raise QrError("qr_malformed", "a dynamic code (01 = 12) carries tag 54 (amount) and a static one (11) does not")
    return parse_amount(root[TAG_AMOUNT]) if dynamic else None


def _expires_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        if not _EXPIRES_AT_PATTERN.fullmatch(text):
            raise ValueError(text)
        return datetime.strptime(text, EXPIRES_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise QrError("qr_malformed", f"tag 26-02 (expiry) '{text}' is not a UTC time YYYYMMDDhhmmss") from None
