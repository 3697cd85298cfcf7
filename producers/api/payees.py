"""Whom a payment pays: one of the tenant's accounts, named in exactly one of four ways (issue 9, item 4).

- `payee`: the account id.
- `payee_alias`: a mobile number, turned into its keyed Raast alias token (the number goes no further).
- `payee_iban`: a Pakistani IBAN (spaces and lower case forgiven), checked for shape and mod-97
  before it is looked up.
- `qr`: a QR payload (producers/api/qr.py): its CRC is verified, a dynamic code's expiry checked
  against the API's clock, and the merchant account it names must be one of the tenant's
  merchants. The payment is then `p2m` (contract kind `p2m_static_qr` or `p2m_dynamic_qr`); a
  dynamic code fixes the amount (`amount` may be left out, and if given must equal it), a static
  code needs one.

`check_payee` does everything that needs no database (each failure a 422 naming its parameter)
and returns the request with its amount and kind settled; `find_payee` looks the account up
within the tenant (404 naming the parameter). A payload that describes a sandbox merchant is
payable whether or not it was made through POST /v1/qr_codes — a payload carries everything a
payment needs — but a dynamic one is paid once: `claim_dynamic_qr`, in the transaction that
stores the payment, records which payment holds the payload, and refuses (409 `qr_already_paid`)
while an earlier payment holds it that has not failed, been canceled or expired.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from producers.api.iban import IBAN_PATTERN, iban_is_valid
from producers.api.payment_rows import PaymentRows
from producers.api.privacy import alias_token
from producers.api.problems import ApiError
from producers.api.qr import QrPayload, check_not_expired, encode_payload, parse_payload
from producers.api.qr_tlv import QrError
from schemas.api.payments import PaymentCreate
from schemas.api.problems import ProblemCode
from schemas.payments import PaymentKind

# The request's ways of naming the payee, in the order a problem names the first extra one.
PAYEE_PARAMS: Final = ("payee", "payee_alias", "payee_iban", "qr")
QR_KIND: Final = "p2m"
MERCHANT_KIND: Final = "merchant"

SELECT_TENANT_ACCOUNT_ID_BY_IBAN: Final = "SELECT id FROM api_accounts WHERE iban = $1 AND tenant_id = $2"
# Takes a dynamic code's payload for `payment_id`, unless a payment that may still move money
# holds it. ON CONFLICT locks the existing row, so of two concurrent payers one waits and loses.
CLAIM_DYNAMIC_QR: Final = """
INSERT INTO api_qr_payments (tenant_id, payload_sha256, payment_id) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, payload_sha256) DO UPDATE
SET payment_id = EXCLUDED.payment_id, claimed_at = now()
WHERE (SELECT status FROM api_payments WHERE id = api_qr_payments.payment_id) IN ('failed', 'canceled', 'expired')
RETURNING payment_id
"""


@dataclass(frozen=True, slots=True)
class PayeeQuery:
    """A checked request: which parameter names the payee and how to look it up, and the request
    with its amount and kind settled (a dynamic QR's amount, `p2m` for a QR)."""

    param: str
    request: PaymentCreate
    account_id: str | None = None  # `payee`, or the QR's merchant
    alias_token: str | None = None
    iban: str | None = None
    qr: QrPayload | None = None


def check_one_payee(request: PaymentCreate) -> str:
    """Exactly one of `payee`, `payee_alias`, `payee_iban` and `qr`; returns the one given."""
    given = [param for param in PAYEE_PARAMS if getattr(request, param) is not None]
    if len(given) > 1:
        raise ApiError(
            status=422,
            code="parameter_unexpected",
            detail=f"give the payee one way only: '{given[0]}' or '{given[1]}', not both",
            param=given[1],
        )
    if not given:
        raise ApiError(
            status=422,
            code="parameter_missing",
            detail="name the payee: 'payee' (an account id), 'payee_alias' (a mobile number), "
            "'payee_iban' (an IBAN) or 'qr' (a QR payload)",
            param="payee",
        )
    return given[0]


def normalise_iban(text: str) -> str:
    """An IBAN as stored: spaces removed, upper case; 422 `payee_iban` when it is not a valid Pakistani one."""
    iban = text.replace(" ", "").upper()
    if not IBAN_PATTERN.fullmatch(iban):
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail="'payee_iban' must be a Pakistani IBAN: PK, two check digits, a 4-letter bank code and "
            "16 digits (24 characters, spaces allowed)",
            param="payee_iban",
        )
    if not iban_is_valid(iban):
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail="'payee_iban' fails its check digits (ISO 13616 mod 97): a character is mistyped; copy it again",
            param="payee_iban",
        )
    return iban


def read_qr(text: str, *, now: datetime) -> QrPayload:
    """The verified payload; 422 `qr_invalid` (the reason in the detail) or `qr_expired`."""
    try:
        qr = parse_payload(text)
        check_not_expired(qr, now=now)
    except QrError as error:
        code: ProblemCode = "qr_expired" if error.code == "qr_expired" else "qr_invalid"
        raise ApiError(status=422, code=code, detail=f"{error.message} ({error.code})", param="qr") from None
    return qr


def qr_amount(qr: QrPayload, asked: int | None) -> int:
    """The amount of a QR payment: a dynamic code's own (`amount`, if given, must equal it), or the
    `amount` asked for at a static code."""
    if qr.amount is None:
        if asked is None:
            raise ApiError(
                status=422,
                code="parameter_missing",
                detail="a static QR code carries no amount: give 'amount' in paisa",
                param="amount",
            )
        return asked
    if asked is not None and asked != qr.amount:
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail=f"this dynamic QR code asks for {qr.amount} paisa; leave 'amount' out or give exactly that",
            param="amount",
        )
    return qr.amount


def qr_contract_kind(payload: str | None) -> PaymentKind | None:
    """The contract kind of a payment by QR (`p2m_static_qr` / `p2m_dynamic_qr`); None without a QR.
    Pass a payload `check_payee` accepted."""
    if payload is None:
        return None
    return "p2m_dynamic_qr" if parse_payload(payload).is_dynamic else "p2m_static_qr"


def amount_of(request: PaymentCreate) -> int:
    """The amount of a request `check_payee` returned: never None there (a dynamic QR's is filled in)."""
    assert request.amount is not None, "check_payee settles every payment's amount"
    return request.amount


def check_payee(request: PaymentCreate, *, key: bytes, now: datetime) -> PayeeQuery:
    """Checks how the request names its payee and its amount, without the database (422s)."""
    param = check_one_payee(request)
    if param == "qr":
        assert request.qr is not None
        qr = read_qr(request.qr, now=now)
        if "kind" in request.model_fields_set and request.kind != QR_KIND:
            raise ApiError(
                status=422,
                code="invalid_parameter",
                detail=f"a payment by QR code is '{QR_KIND}'; leave 'kind' out or give '{QR_KIND}'",
                param="kind",
            )
        settled = request.model_copy(update={"amount": qr_amount(qr, request.amount), "kind": QR_KIND})
        return PayeeQuery(param=param, request=settled, account_id=qr.merchant_account, qr=qr)
    if request.amount is None:
        raise ApiError(status=422, code="parameter_missing", detail="'amount' is required", param="amount")
    if param == "payee_alias":
        assert request.payee_alias is not None
        try:
            token = alias_token(key, request.payee_alias)
        except ValueError as error:  # its message names the accepted forms, never the input
            raise ApiError(status=422, code="invalid_parameter", detail=str(error), param="payee_alias") from None
        return PayeeQuery(param=param, request=request, alias_token=token)
    if param == "payee_iban":
        assert request.payee_iban is not None
        return PayeeQuery(param=param, request=request, iban=normalise_iban(request.payee_iban))
    return PayeeQuery(param=param, request=request, account_id=request.payee)


async def find_payee(db: asyncpg.Connection | asyncpg.Pool, query: PayeeQuery, *, tenant_id: str) -> asyncpg.Record:
    """The tenant's payee account (the columns of PaymentRows.account); 404 naming the parameter."""
    rows = PaymentRows(db)
    account_id = query.account_id
    if query.iban is not None:
        account_id = await db.fetchval(SELECT_TENANT_ACCOUNT_ID_BY_IBAN, query.iban, tenant_id)
    if query.alias_token is not None:
        payee = await rows.account_by_alias(alias_token=query.alias_token, tenant_id=tenant_id)
    else:
        payee = None if account_id is None else await rows.account(account_id=account_id, tenant_id=tenant_id)
    # A QR code pays one of the tenant's own merchants, never a sandbox-made magic account.
    if query.qr is not None and (payee is None or payee["kind"] != MERCHANT_KIND or payee["magic"] is not None):
        raise ApiError(
            status=404, code="not_found", detail="the QR code names none of your merchant accounts", param="qr"
        )
    if payee is None:
        raise ApiError(status=404, code="not_found", detail="you have no account for this payee", param=query.param)
    return payee


async def claim_dynamic_qr(
    connection: asyncpg.Connection, request: PaymentCreate, *, tenant_id: str, payment_id: str
) -> None:
    """Records that `payment_id` pays the request's dynamic QR code, inside the transaction storing
    the payment; 409 `qr_already_paid` (the transaction then rolls back) when another payment holds
    it that has not failed, been canceled or expired. Nothing to do for other payments."""
    if request.qr is None:
        return
    qr = parse_payload(request.qr)
    if not qr.is_dynamic:
        return
    # The payload as the sandbox writes it, so a lower-case CRC or an unknown tag added (CRC
    # recomputed) is still the same code.
    digest = hashlib.sha256(encode_payload(qr).encode("ascii")).digest()
    if await connection.fetchval(CLAIM_DYNAMIC_QR, tenant_id, digest, payment_id) is None:
        raise ApiError(
            status=409,
            code="qr_already_paid",
            detail="this dynamic QR code is paid already (or a payment of it is still processing); "
            "ask the merchant for a new code",
            param="qr",
        )
