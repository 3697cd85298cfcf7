"""Pakistan QR payloads (EMVCo merchant-presented mode): CRC, amounts, round trips, tampering, PNG."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import get_args

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from producers.api.qr import (
    ADDITIONAL_DATA_CHARS_MAX,
    MCC_BY_MERCHANT_CATEGORY,
    MERCHANT_CITY_CHARS_MAX,
    MERCHANT_NAME_CHARS_MAX,
    PNG_MODULE_PIXELS,
    PNG_QUIET_ZONE_MODULES,
    QR_AMOUNT_PAISA_MAX,
    QrPayload,
    check_not_expired,
    encode_payload,
    format_amount,
    parse_amount,
    parse_payload,
    qr_symbol,
    render_png,
)
from producers.api.qr_tlv import QrError, check_crc, crc16_ccitt_false
from schemas.accounts import MerchantCategory
from schemas.money import AMOUNT_PAISA_MAX

STATIC = QrPayload(
    merchant_account="acc_3f9c0a1b2c3d4e5f",
    merchant_name="Khan Kiryana Store",
    merchant_city="Peshawar",
    merchant_category_code="5411",
)
EXPIRES_AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
DYNAMIC = replace(STATIC, amount=25000, bill_number="INV-118", reference="ORD-2024-0042", expires_at=EXPIRES_AT)
# The same payloads as docs/api/qr.md shows them; a change here is a change of the wire format.
STATIC_TEXT = (
    "00020101021126400012pk.kpsandbox0120acc_3f9c0a1b2c3d4e5f5204541153035865802PK"
    "5918Khan Kiryana Store6008Peshawar6304D9F6"
)
DYNAMIC_TEXT = (
    "00020101021226580012pk.kpsandbox0120acc_3f9c0a1b2c3d4e5f021420250301123000"
    "5204541153035865406250.005802PK5918Khan Kiryana Store6008Peshawar"
    "62280107INV-1180513ORD-2024-00426304565A"
)
# Published payloads of other EMVCo schemes, each with a CRC computed by someone else's code:
# Singapore PayNow (github.com/VirgilZhao/paynow README) and a Mastercard merchant QR
# (developer.mastercard.com, "Generate QR Code for Merchants").
PAYNOW_TEXT = (
    "00020101021226470009SG.PAYNOW010120208123456780301004082026030452040000530370254040.99"
    "5802SG5911testcompany6009Singapore62270123testordernumber1234567863040047"
)
MASTERCARD_TEXT = (
    "000201010211057704736a2f41a3-c54c-fce8-32d2-0324e1c32e22*3440e5bf-81ca-4c5f-a1b2-cf989f09a039"
    "52045024530384054031005802US5913Test Merchant6008New York62080304123463046F6D"
)


def signed(body: str) -> str:
    """Appends a correct CRC object, as anyone editing a payload can: a CRC is not a signature."""
    body += "6304"
    return body + f"{crc16_ccitt_false(body.encode('ascii')):04X}"


def unsigned(text: str) -> str:
    """The payload without its CRC object."""
    return text[:-8]


def error_of(text: str) -> QrError:
    with pytest.raises(QrError) as raised:
        parse_payload(text)
    return raised.value


# Strategies: values within the format's limits, as the API will pass them.


def ans(chars_max: int) -> st.SearchStrategy[str]:
    """Printable ASCII (EMVCo's "ans") of 1 to `chars_max` characters, not padded with spaces."""
    text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=chars_max)
    return text.filter(lambda value: value == value.strip())


names = ans(MERCHANT_NAME_CHARS_MAX)
cities = ans(MERCHANT_CITY_CHARS_MAX)
labels = ans(ADDITIONAL_DATA_CHARS_MAX)
accounts = st.from_regex(r"\A[a-z]{2,4}_[0-9a-f]{8,32}\Z")
mccs = st.from_regex(r"\A[0-9]{4}\Z")
amounts = st.integers(min_value=1, max_value=QR_AMOUNT_PAISA_MAX)
expiries = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=0)
)


@st.composite
def payloads(draw: st.DrawFn) -> QrPayload:
    """A static or dynamic payload with any values the format allows."""
    shop = QrPayload(
        merchant_account=draw(accounts),
        merchant_name=draw(names),
        merchant_city=draw(cities),
        merchant_category_code=draw(mccs),
        bill_number=draw(st.none() | labels),
        reference=draw(st.none() | labels),
    )
    if draw(st.booleans()):
        return shop
    return replace(shop, amount=draw(amounts), expires_at=draw(st.none() | expiries))


def test_crc16_ccitt_false_check_value() -> None:
    """The CRC is CRC-16/CCITT-FALSE: the catalogue's check value for '123456789' is 29B1."""
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("text", [PAYNOW_TEXT, MASTERCARD_TEXT])
def test_crc_agrees_with_other_schemes_published_payloads(text: str) -> None:
    """The CRC covers the payload up to and including '6304', as other implementations compute it."""
    check_crc(text)


@pytest.mark.parametrize(
    ("paisa", "text"),
    [
        (25000, "250.00"),
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (123456, "1234.56"),
        (QR_AMOUNT_PAISA_MAX, "9999999999.99"),
    ],
)
def test_amount_is_rupees_with_two_decimals(paisa: int, text: str) -> None:
    """Tag 54 writes paisa as rupees with two decimals and no separators, and reads them back exactly."""
    assert format_amount(paisa) == text
    assert parse_amount(text) == paisa


def test_largest_qr_amount_is_what_thirteen_characters_hold() -> None:
    """Tag 54 holds 13 characters, so the largest QR amount is one paisa under the contract's maximum."""
    assert QR_AMOUNT_PAISA_MAX == AMOUNT_PAISA_MAX - 1
    assert len(format_amount(QR_AMOUNT_PAISA_MAX)) == 13


@pytest.mark.parametrize("paisa", [0, -1, QR_AMOUNT_PAISA_MAX + 1, True, 250.0, "25000"])
def test_amount_outside_the_format_is_refused(paisa: object) -> None:
    """Zero, negative, too large, boolean, float and string amounts never reach tag 54."""
    with pytest.raises(QrError) as raised:
        format_amount(paisa)  # type: ignore[arg-type]
    assert raised.value.code == "qr_field_invalid"


@pytest.mark.parametrize(("text", "paisa"), [("250", 25000), ("250.5", 25050), ("0.01", 1)])
def test_amount_from_other_issuers_is_read_without_a_float(text: str, paisa: int) -> None:
    """Amounts written with fewer decimals by other issuers still read as exact paisa."""
    assert parse_amount(text) == paisa


@pytest.mark.parametrize("text", ["250.001", "-1.00", "1,000.00", "01.00", "0.00", "0", "1e3", ".50", "250.", " 250"])
def test_amount_in_any_other_shape_is_malformed(text: str) -> None:
    """Extra decimals, signs, separators, leading zeros, exponents and zero are refused."""
    with pytest.raises(QrError) as raised:
        parse_amount(text)
    assert raised.value.code == "qr_malformed"


@given(amounts)
def test_amount_round_trips_for_every_paisa_value(paisa: int) -> None:
    """Every amount the QR can carry survives paisa -> text -> paisa unchanged."""
    assert parse_amount(format_amount(paisa)) == paisa


def test_static_and_dynamic_payloads_are_the_documented_text() -> None:
    """The encoder writes exactly the documented payloads: tags in order, CRC last, upper-case hex."""
    assert encode_payload(STATIC) == STATIC_TEXT
    assert encode_payload(DYNAMIC) == DYNAMIC_TEXT


def test_documented_payloads_parse_to_what_was_encoded() -> None:
    """Parsing the documented payloads gives back the static and the dynamic code, amount in paisa."""
    assert parse_payload(STATIC_TEXT) == STATIC
    dynamic = parse_payload(DYNAMIC_TEXT)
    assert dynamic == DYNAMIC
    assert dynamic.amount == 25000
    assert dynamic.is_dynamic and not parse_payload(STATIC_TEXT).is_dynamic


def test_static_code_says_11_and_has_no_amount_dynamic_says_12_with_one() -> None:
    """Point of initiation 11 goes with no amount, 12 with tag 54."""
    assert STATIC_TEXT.startswith("000201010211") and "5406" not in STATIC_TEXT
    assert DYNAMIC_TEXT.startswith("000201010212") and "5406250.00" in DYNAMIC_TEXT


@settings(max_examples=300)
@given(payloads())
def test_any_payload_round_trips(qr: QrPayload) -> None:
    """Any static or dynamic payload within the limits encodes and parses back to itself."""
    text = encode_payload(qr)
    assert len(text) <= 512
    assert parse_payload(text) == qr


@settings(max_examples=300)
@given(payloads(), st.data())
def test_any_single_character_change_fails_the_crc(qr: QrPayload, data: st.DataObject) -> None:
    """Changing one character anywhere before the CRC object is caught as qr_crc_mismatch."""
    text = encode_payload(qr)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 9))
    replacement = data.draw(st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(lambda c: c != text[position]))
    tampered = text[:position] + replacement + text[position + 1 :]
    assert error_of(tampered).code == "qr_crc_mismatch"


def test_changed_amount_fails_the_crc() -> None:
    """Raising the amount of a dynamic code without recomputing its CRC is refused as qr_crc_mismatch."""
    tampered = DYNAMIC_TEXT.replace("5406250.00", "5406950.00")
    error = error_of(tampered)
    assert error.code == "qr_crc_mismatch"
    assert "565A" in error.message


def test_changed_crc_digit_fails_the_crc() -> None:
    """A CRC with one hex digit changed no longer matches."""
    assert error_of(DYNAMIC_TEXT[:-1] + "B").code == "qr_crc_mismatch"


def test_wrong_tag_length_without_a_new_crc_fails_the_crc() -> None:
    """A tag length edited without recomputing the CRC is caught by the CRC first."""
    assert error_of(STATIC_TEXT.replace("5918Khan", "5919Khan")).code == "qr_crc_mismatch"


@pytest.mark.parametrize(
    ("original", "edited"),
    [
        ("5918Khan Kiryana Store", "5919Khan Kiryana Store"),  # length one too long
        ("5918Khan Kiryana Store", "5917Khan Kiryana Store"),  # length one too short
        ("6008Peshawar", "6099Peshawar"),  # runs past the end
        ("6008Peshawar", "6000Peshawar"),  # zero length
        ("5204", "52x4"),  # a length that is not two digits
    ],
)
def test_wrong_tag_length_with_a_recomputed_crc_is_malformed(original: str, edited: str) -> None:
    """A tag length that does not fit its value is refused as qr_malformed even when the CRC is redone."""
    tampered = signed(unsigned(STATIC_TEXT).replace(original, edited))
    assert error_of(tampered).code == "qr_malformed"


@pytest.mark.parametrize(
    "tampered",
    [unsigned(STATIC_TEXT), STATIC_TEXT[:-4], STATIC_TEXT[:-1], STATIC_TEXT[:-4] + "D9G6", "6304"],
    ids=["object-removed", "digits-removed", "digit-removed", "not-hex", "nothing-else"],
)
def test_removed_or_broken_crc_is_refused_as_missing(tampered: str) -> None:
    """A payload without a complete CRC object ('6304' and four hex digits) is qr_crc_missing."""
    assert error_of(tampered).code == "qr_crc_missing"


def test_lower_case_crc_is_accepted() -> None:
    """A CRC written in lower-case hex by another issuer still verifies (the sandbox writes upper case)."""
    assert parse_payload(STATIC_TEXT[:-4] + STATIC_TEXT[-4:].lower()) == STATIC


@pytest.mark.parametrize(
    ("original", "edited", "code"),
    [
        ("5303586", "5303840", "qr_currency_unsupported"),
        ("5802PK", "5802SG", "qr_country_unsupported"),
        ("0012pk.kpsandbox", "0012pk.elsewhere", "qr_scheme_unsupported"),
        ("000201", "000202", "qr_malformed"),
        ("010211", "010213", "qr_malformed"),
    ],
    ids=["currency", "country", "scheme", "format", "initiation"],
)
def test_re_signed_payload_with_a_wrong_value_is_refused_with_its_code(original: str, edited: str, code: str) -> None:
    """A well-signed payload is still refused for a foreign currency, country or scheme, or bad values."""
    assert original in STATIC_TEXT
    assert error_of(signed(unsigned(STATIC_TEXT).replace(original, edited))).code == code


def test_other_schemes_payloads_are_refused_for_their_currency() -> None:
    """A genuine PayNow (SGD) or Mastercard (USD) code has a good CRC but is not payable in PKR."""
    assert error_of(PAYNOW_TEXT).code == "qr_currency_unsupported"
    assert error_of(MASTERCARD_TEXT).code == "qr_currency_unsupported"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (unsigned(STATIC_TEXT).replace("5918Khan Kiryana Store", ""), "name missing"),
        (unsigned(STATIC_TEXT).replace("6008Peshawar", ""), "city missing"),
        (unsigned(STATIC_TEXT).replace("010211", ""), "initiation missing"),
        (unsigned(STATIC_TEXT) + "6008Peshawar", "tag twice"),
        (unsigned(STATIC_TEXT).replace("000201010211", "010211000201"), "format not first"),
        (unsigned(STATIC_TEXT).replace("010211", "010212"), "dynamic without amount"),
        (unsigned(STATIC_TEXT).replace("5802PK", "5406250.005802PK"), "static with amount"),
        (unsigned(DYNAMIC_TEXT).replace("5406250.00", "54040.00"), "zero amount"),
        (unsigned(DYNAMIC_TEXT).replace("5406250.00", "54052,500"), "amount separator"),
        (unsigned(DYNAMIC_TEXT).replace("0214" + "20250301123000", "0214" + "20251301123000"), "no 13th month"),
        (unsigned(STATIC_TEXT).replace("5204" + "5411", "5204" + "54A1"), "mcc not digits"),
        (unsigned(STATIC_TEXT).replace("0120acc_3f9c0a1b2c3d4e5f", "0120ACC-3F9C0A1B2C3D4E5F"), "account id"),
        (unsigned(STATIC_TEXT).replace("6008Peshawar", "6016Dera Ismail Khan"), "city over 15"),
        (unsigned(STATIC_TEXT) + "6304ABCD", "crc object twice"),
    ],
)
def test_re_signed_payload_breaking_a_rule_is_malformed(body: str, why: str) -> None:
    """Missing or repeated tags, misplaced tags and values out of format are qr_malformed, however signed."""
    assert error_of(signed(body)).code == "qr_malformed", why


@pytest.mark.parametrize(
    "text",
    ["", "x" * 513, STATIC_TEXT.replace("Peshawar", "Peshāwar"), STATIC_TEXT + "\n", None, 42],
    ids=["empty", "too-long", "non-ascii", "newline", "none", "number"],
)
def test_text_that_cannot_be_a_payload_is_malformed(text: object) -> None:
    """Empty, over 512 characters, non-ASCII, control characters and non-strings are qr_malformed."""
    assert error_of(text).code == "qr_malformed"  # type: ignore[arg-type]


def test_unknown_tags_are_carried_over() -> None:
    """Optional tags the sandbox does not write (postal code 61, a card network's 04) do not stop payment."""
    body = unsigned(STATIC_TEXT).replace("5204", "040812345678" + "5204").replace("Peshawar", "Peshawar" + "610525000")
    assert parse_payload(signed(body)) == STATIC


def test_dynamic_code_expires_at_its_expiry_time() -> None:
    """A dynamic code is payable until the second before its expiry and qr_expired from then on."""
    check_not_expired(DYNAMIC, now=EXPIRES_AT - timedelta(seconds=1))
    with pytest.raises(QrError) as raised:
        check_not_expired(DYNAMIC, now=EXPIRES_AT)
    assert raised.value.code == "qr_expired"
    assert "2025-03-01T12:30:00+00:00" in raised.value.message


def test_static_code_and_dynamic_code_without_expiry_never_expire() -> None:
    """Codes without an expiry stay payable whatever the time."""
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    check_not_expired(STATIC, now=far_future)
    check_not_expired(replace(STATIC, amount=100), now=far_future)


def test_expiry_is_kept_in_utc_to_the_second() -> None:
    """An expiry given in Pakistan time with microseconds is stored as the same instant in UTC, to the second."""
    pkt = timezone(timedelta(hours=5))
    qr = replace(STATIC, amount=100, expires_at=datetime(2025, 3, 1, 17, 30, 0, 999_999, tzinfo=pkt))
    assert qr.expires_at == EXPIRES_AT
    assert qr.expires_at is not None and qr.expires_at.tzinfo is UTC
    assert "021420250301123000" in encode_payload(qr)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"merchant_name": "K" * 26}, "merchant_name"),
        ({"merchant_name": ""}, "merchant_name"),
        ({"merchant_name": " Khan"}, "merchant_name"),
        ({"merchant_name": "Khan\n"}, "merchant_name"),
        ({"merchant_name": "خان کریانہ"}, "merchant_name"),
        ({"merchant_city": "Dera Ismail Khan"}, "merchant_city"),
        ({"merchant_account": "03451234567"}, "merchant_account"),
        ({"merchant_account": "acc_3f9c0a1b\n"}, "merchant_account"),
        ({"merchant_category_code": "541"}, "merchant_category_code"),
        ({"amount": 0}, "amount"),
        ({"amount": 250.0}, "amount"),
        ({"amount": QR_AMOUNT_PAISA_MAX + 1}, "amount"),
        ({"reference": "R" * 26}, "reference"),
        ({"bill_number": ""}, "bill_number"),
        ({"expires_at": EXPIRES_AT}, "expires_at"),  # a static code
        ({"amount": 100, "expires_at": datetime(2025, 3, 1)}, "expires_at"),  # naive
        ({"amount": 100, "expires_at": datetime(1999, 12, 31, tzinfo=UTC)}, "expires_at"),
    ],
)
def test_values_the_format_cannot_carry_are_refused_with_the_field(changes: dict[str, object], field: str) -> None:
    """The encoder refuses over-long, empty, padded, non-ASCII and ill-typed values, naming the field."""
    with pytest.raises(QrError) as raised:
        replace(STATIC, **changes)  # type: ignore[arg-type]
    assert raised.value.code == "qr_field_invalid"
    assert raised.value.field == field


def test_every_merchant_category_has_a_four_digit_mcc() -> None:
    """The API can fill tag 52 for every merchant category of the contract."""
    assert set(MCC_BY_MERCHANT_CATEGORY) == set(get_args(MerchantCategory))
    for mcc in MCC_BY_MERCHANT_CATEGORY.values():
        replace(STATIC, merchant_category_code=mcc)


def test_png_is_a_png_that_a_qr_reader_decodes_to_the_payload() -> None:
    """The PNG starts with the PNG signature and zxing-cpp reads the exact payload back from it."""
    png = render_png(DYNAMIC_TEXT)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [result.text for result in results] == [DYNAMIC_TEXT]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    assert parse_payload(results[0].text) == DYNAMIC


def test_png_pixels_are_the_symbols_modules() -> None:
    """Each module of segno's symbol for the payload is one square of the PNG, dark where the module is."""
    symbol = qr_symbol(STATIC_TEXT)
    image = Image.open(io.BytesIO(render_png(STATIC_TEXT))).convert("L")
    side = len(symbol.matrix) + 2 * PNG_QUIET_ZONE_MODULES
    assert image.size == (side * PNG_MODULE_PIXELS, side * PNG_MODULE_PIXELS)
    centre = PNG_MODULE_PIXELS // 2
    for row, modules in enumerate(symbol.matrix):
        for column, dark in enumerate(modules):
            x = (column + PNG_QUIET_ZONE_MODULES) * PNG_MODULE_PIXELS + centre
            y = (row + PNG_QUIET_ZONE_MODULES) * PNG_MODULE_PIXELS + centre
            assert (image.getpixel((x, y)) == 0) == bool(dark), (row, column)
    assert image.getpixel((centre, centre)) == 255  # the quiet zone is light


def test_guide_shows_the_payloads_the_encoder_writes() -> None:
    """docs/api/qr.md's examples are the encoder's output, so the guide cannot drift from the code."""
    guide = (Path(__file__).parents[2] / "docs" / "api" / "qr.md").read_text(encoding="utf-8")
    assert STATIC_TEXT in guide.splitlines()
    assert DYNAMIC_TEXT in guide.splitlines()
