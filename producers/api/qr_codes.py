"""QR codes made through the API: POST /v1/qr_codes and reading them back (issue 9, item 4).

Making a code: check the type's fields → find the tenant's merchant account → build the payload
(producers/api/qr.py: tag 52 from the merchant's category, tag 59 its name, tag 60 its city,
a dynamic code's amount, reference, bill number and expiry) → store it. Nothing is published:
a code moves no money until somebody pays it (POST /v1/payments with `qr`, producers/api/payees.py),
and paying needs only the payload, which describes itself and carries its own CRC.

The PNG is drawn from the stored payload on every request (segno, a few milliseconds), so only
the text is kept.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from producers.api.problems import ApiError
from producers.api.qr import MCC_BY_MERCHANT_CATEGORY, QrPayload, encode_payload, render_png
from producers.api.qr_code_rows import QrCodeRows
from producers.api.qr_tlv import QrError
from producers.api.resources import DB_UNAVAILABLE, unavailable
from producers.api.tenants import Tenant
from schemas.api.qr import QR_CITY_CHARS_MAX, QR_CODE_ID_PREFIX, QR_TEXT_PATTERN, QrCode, QrCodeCreate

QR_CODE_ID_RANDOM_BYTES: Final = 16
MERCHANT_KIND: Final = "merchant"
DEFAULT_NAME_PREFIX: Final = "Merchant "
DEFAULT_NAME_ID_CHARS: Final = 8  # the account id's last characters, to tell a tenant's merchants apart
# The QrPayload fields the request names differently (the rest share their names).
REQUEST_PARAMS: Final = {"merchant_account": "merchant", "expires_at": "expires_in"}
_QR_TEXT: Final = re.compile(QR_TEXT_PATTERN)

Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def image_path(qr_code_id: str) -> str:
    """Where the code's PNG is served, relative to the API's root."""
    return f"/v1/qr_codes/{qr_code_id}/image.png"


def check_type_fields(request: QrCodeCreate) -> None:
    """A dynamic code needs `amount`; a static one takes neither `amount` nor `expires_in`."""
    if request.type == "dynamic":
        if request.amount is None:
            raise ApiError(
                status=422,
                code="parameter_missing",
                detail="a dynamic QR code carries its amount: give 'amount' in paisa",
                param="amount",
            )
        return
    for param in ("amount", "expires_in"):
        if getattr(request, param) is not None:
            raise ApiError(
                status=422,
                code="parameter_unexpected",
                detail=f"'{param}' is for dynamic codes; a static code is reusable, the payer keys the amount in",
                param=param,
            )


def merchant_city(request: QrCodeCreate, district: str) -> str:
    """Tag 60: the request's `merchant_city`, else the merchant's district when tag 60 can hold it."""
    if request.merchant_city is not None:
        return request.merchant_city
    if len(district) > QR_CITY_CHARS_MAX or not _QR_TEXT.fullmatch(district):
        raise ApiError(
            status=422,
            code="parameter_missing",
            detail=f"the merchant's district does not fit tag 60 (1 to {QR_CITY_CHARS_MAX} ASCII characters); "
            "give 'merchant_city', e.g. 'D.I. Khan'",
            param="merchant_city",
        )
    return district


def build_payload(request: QrCodeCreate, merchant: asyncpg.Record, *, now: datetime) -> QrPayload:
    """The code's content; 422 naming the parameter a value of which the format cannot carry."""
    expires_at = now + timedelta(seconds=request.expires_in) if request.expires_in is not None else None
    try:
        return QrPayload(
            merchant_account=merchant["id"],
            merchant_name=request.merchant_name or DEFAULT_NAME_PREFIX + merchant["id"][-DEFAULT_NAME_ID_CHARS:],
            merchant_city=merchant_city(request, merchant["district"]),
            merchant_category_code=MCC_BY_MERCHANT_CATEGORY[merchant["category"]],
            amount=request.amount,
            bill_number=request.bill_number,
            reference=request.reference,
            expires_at=expires_at,
        )
    except QrError as error:
        param = REQUEST_PARAMS.get(error.field or "", error.field)
        raise ApiError(status=422, code="invalid_parameter", detail=error.message, param=param) from None


def qr_code_from_row(row: asyncpg.Record) -> QrCode:
    """The API's view of a stored code."""
    return QrCode(
        id=row["id"],
        type=row["type"],
        merchant=row["merchant"],
        amount=row["amount"],
        reference=row["reference"],
        bill_number=row["bill_number"],
        payload=row["payload"],
        expires_at=row["expires_at"],
        image_url=image_path(row["id"]),
        created_at=row["created_at"],
    )


class QrCodes:
    """Makes and reads a tenant's QR codes."""

    def __init__(self, *, pool: asyncpg.Pool, now: Clock = _wall_clock) -> None:
        self._pool = pool
        self._now = now

    async def create(self, *, tenant: Tenant, request: QrCodeCreate) -> QrCode:
        """Stores a new static or dynamic code of one of the tenant's merchants."""
        check_type_fields(request)
        try:
            rows = QrCodeRows(self._pool)
            merchant = await rows.merchant(account_id=request.merchant, tenant_id=tenant.id)
            if merchant is None or merchant["magic"] is not None:
                raise ApiError(
                    status=404, code="not_found", detail="you have no account with this id", param="merchant"
                )
            if merchant["kind"] != MERCHANT_KIND:
                raise ApiError(
                    status=422,
                    code="invalid_parameter",
                    detail=f"QR codes are for merchant accounts; this one is a {merchant['kind']}",
                    param="merchant",
                )
            qr = build_payload(request, merchant, now=self._now())
            row = await rows.insert(
                qr_code_id=QR_CODE_ID_PREFIX + secrets.token_hex(QR_CODE_ID_RANDOM_BYTES),
                tenant_id=tenant.id,
                merchant=merchant["id"],
                type=request.type,
                amount=qr.amount,
                reference=qr.reference,
                bill_number=qr.bill_number,
                payload=encode_payload(qr),
                expires_at=qr.expires_at,
            )
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return qr_code_from_row(row)

    async def get(self, *, tenant: Tenant, qr_code_id: str) -> QrCode:
        """The tenant's code; 404 when the tenant has no such code."""
        try:
            row = await QrCodeRows(self._pool).qr_code(qr_code_id=qr_code_id, tenant_id=tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise ApiError(status=404, code="not_found", detail="you have no QR code with this id", param="qr_code_id")
        return qr_code_from_row(row)

    async def png(self, *, tenant: Tenant, qr_code_id: str) -> bytes:
        """The tenant's code drawn as a PNG; 404 when the tenant has no such code."""
        return render_png((await self.get(tenant=tenant, qr_code_id=qr_code_id)).payload)
