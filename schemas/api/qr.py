"""`/v1/qr_codes`: what a startup sends to make a merchant's QR code, and what it reads back.

A static code is the merchant's sticker (the payer keys the amount in, again and again); a
dynamic code is one checkout with its amount, optional reference, bill number and expiry, and
is paid once. The payload format is in docs/api/qr.md; the encoder is producers/api/qr.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api.accounts import ApiAccountId

QR_CODE_ID_PREFIX: Final = "qr_"
# Tag 54 holds at most "9999999999.99" rupees (thirteen characters): one paisa under 10^12.
QR_AMOUNT_MAX: Final = 10**12 - 1
QR_EXPIRES_IN_MAX_S: Final = 30 * 86_400  # a checkout code lives at most a month
QR_TEXT_CHARS_MAX: Final = 25  # tag 62's bill number and reference; tag 59's merchant name
QR_CITY_CHARS_MAX: Final = 15  # tag 60
PAYLOAD_CHARS_MAX: Final = 512  # EMV QRCPS-MPM's bound on a whole payload
# EMVCo's "ans" characters (printable ASCII), not starting or ending with a space.
QR_TEXT_PATTERN: Final = r"^[!-~]([ -~]*[!-~])?$"

QrCodeType = Literal["static", "dynamic"]
QrCodeId = str


QrText = Annotated[str, Field(min_length=1, max_length=QR_TEXT_CHARS_MAX, pattern=QR_TEXT_PATTERN)]
QrCity = Annotated[str, Field(min_length=1, max_length=QR_CITY_CHARS_MAX, pattern=QR_TEXT_PATTERN)]
QrAmount = Annotated[
    int,
    Field(strict=True, gt=0, le=QR_AMOUNT_MAX, description="Dynamic codes only: the amount in paisa, a JSON integer."),
]


class QrCodeCreate(BaseModel):
    """Makes a QR code for one of your merchant accounts.

    `static`: no amount, never expires. `dynamic`: `amount` required; `reference`, `bill_number`
    and `expires_in` optional (without `expires_in` it never expires, but is still paid once).
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"merchant": "acc_" + "3" * 32, "type": "static"},
                {
                    "merchant": "acc_" + "3" * 32,
                    "type": "dynamic",
                    "amount": 25000,
                    "reference": "INV-1",
                    "bill_number": "B-2024-0042",
                    "expires_in": 900,
                },
            ]
        },
    )

    merchant: ApiAccountId = Field(description="One of your `merchant` accounts: the payee of the code.")
    type: QrCodeType
    amount: QrAmount | None = None
    reference: QrText | None = Field(default=None, description="Tag 62-05: your order or invoice reference.")
    bill_number: QrText | None = Field(default=None, description="Tag 62-01: the bill or invoice number.")
    expires_in: int | None = Field(
        default=None, gt=0, le=QR_EXPIRES_IN_MAX_S, description="Dynamic codes only: seconds until the code expires."
    )
    merchant_name: QrText | None = Field(
        default=None, description="Tag 59; default 'Merchant ' and the last 8 characters of the account id."
    )
    merchant_city: QrCity | None = Field(
        default=None, description="Tag 60; default the account's district when it fits in 15 characters."
    )


class QrCode(BaseModel):
    """A QR code of one of your merchants: its EMVCo payload, and where to fetch it as a PNG."""

    object: Literal["qr_code"] = "qr_code"
    id: QrCodeId = Field(description="The code's id, e.g. 'qr_3f9c…'.")
    type: QrCodeType
    merchant: ApiAccountId
    amount: int | None = Field(description="Dynamic codes: the amount in paisa the code asks for.")
    currency: Literal["PKR"] = "PKR"
    reference: str | None = None
    bill_number: str | None = None
    payload: str = Field(description="The EMVCo merchant-presented payload: pay it as `qr` on POST /v1/payments.")
    expires_at: datetime | None = Field(description="Dynamic codes with `expires_in`: when it can no longer be paid.")
    image_url: str = Field(description="The path of the code as a PNG image: GET it with your secret key.")
    created_at: datetime
