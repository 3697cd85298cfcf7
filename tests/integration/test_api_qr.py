"""QR codes and payees by IBAN or QR through a real uvicorn server on the test stack's Kafka and PostgreSQL,
settled by the ledger and brought back by the views consumer: codes made, read and drawn as PNG; static and
dynamic codes paid (the contract kind reaching the ledger); a dynamic code paid once; tampered, expired and
foreign codes refused; payment by IBAN (issue 9, item 4)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import httpx
import pytest
import zxingcpp
from PIL import Image

from infra.settings import Settings
from producers.api.qr import QrPayload, encode_payload, parse_payload
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _assert_problem, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import TOP_UP, _available, _msisdn, _open, _pay, _payment, _settle, _top_up

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
QR_ID: Final = re.compile(r"^qr_[0-9a-f]{32}$")
EXPIRES_SLACK_S: Final = 60  # how far the code's expiry may sit from the test's own clock


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-qr-state"), "api_qr") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _account(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/accounts", json={"msisdn": _msisdn(), **body}, headers=_auth(key))
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return account


async def _merchant(client: httpx.AsyncClient, key: str, district: str = "Peshawar") -> str:
    merchant = await _account(client, key, kind="merchant", district=district, category="kiryana")
    return str(merchant["id"])


async def _code(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/qr_codes", json=body, headers=_auth(key))
    assert response.status_code == 201, response.text
    code: dict[str, Any] = response.json()
    assert QR_ID.fullmatch(code["id"]) and code["image_url"] == f"/v1/qr_codes/{code['id']}/image.png", code
    return code


async def _ledger_kind(config: Settings, payment_id: str) -> str:
    """The contract kind the ledger wrote on the payment's transfer (ledger_transfers.code)."""
    connection = await asyncpg.connect(config.dsn)
    try:
        kind: str = await connection.fetchval(
            "SELECT t.code FROM ledger_transfers AS t JOIN api_payments AS p ON p.request_event_id = t.id "
            "WHERE p.id = $1",
            payment_id,
        )
        return kind
    finally:
        await connection.close()


async def test_a_static_code_is_stored_read_back_and_its_png_decodes_to_the_payload(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A static code names the merchant with its category's MCC and district; GET returns it again and
    the PNG (image/png) decodes with zxing-cpp to exactly the payload."""
    key = await _tenant_key(api.config, "qr shop")
    merchant = await _merchant(client, key, district="Mardan")
    code = await _code(client, key, merchant=merchant, type="static")
    assert code["type"] == "static" and code["amount"] is None and code["expires_at"] is None, code
    parsed = parse_payload(code["payload"])
    assert parsed.merchant_account == merchant and parsed.amount is None
    assert parsed.merchant_category_code == "5411" and parsed.merchant_city == "Mardan"
    assert parsed.merchant_name == "Merchant " + merchant[-8:]

    read = await client.get(f"/v1/qr_codes/{code['id']}", headers=_auth(key))
    assert read.status_code == 200 and read.json() == code, read.text
    image = await client.get(code["image_url"], headers=_auth(key))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png", image.headers
    assert image.content.startswith(PNG_SIGNATURE)
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.content)))
    assert [result.text for result in decoded] == [code["payload"]]


async def test_a_static_code_is_paid_with_the_amount_the_payer_keys_in(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """Paying a static code: `amount` required; kind p2m, the ledger's transfer is p2m_static_qr; balances move;
    a static code can be paid again."""
    key = await _tenant_key(api.config, "static payer")
    payer, merchant = await _open(client, key), await _merchant(client, key)
    code = await _code(client, key, merchant=merchant, type="static", reference="COUNTER-1")
    await _top_up(client, key, payer)
    missing = await client.post("/v1/payments", json={"payer": payer, "qr": code["payload"]}, headers=_auth(key))
    _assert_problem(missing, 422, "parameter_missing", "amount")

    first = await _pay(client, key, payer=payer, qr=code["payload"], amount=12_345)
    second = await _pay(client, key, payer=payer, qr=code["payload"], amount=655)
    assert first["payee"] == merchant and first["kind"] == "p2m" and first["amount"] == 12_345, first
    await _settle(api.config)
    assert (await _payment(client, key, first["id"]))["status"] == "succeeded"
    assert (await _payment(client, key, second["id"]))["status"] == "succeeded"
    assert await _ledger_kind(api.config, first["id"]) == "p2m_static_qr"
    assert await _available(client, key, merchant) == 13_000
    assert await _available(client, key, payer) == TOP_UP - 13_000


async def test_a_dynamic_code_sets_the_amount_and_is_paid_once(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A dynamic code: expiry from expires_in; paid without `amount` → its amount, p2m_dynamic_qr, succeeded,
    balances moved; paying it again → 409 qr_already_paid; another amount or kind → 422."""
    key = await _tenant_key(api.config, "checkout")
    payer, merchant = await _open(client, key), await _merchant(client, key)
    code = await _code(client, key, merchant=merchant, type="dynamic", amount=25_000, reference="INV-1", expires_in=900)
    expires_at = datetime.fromisoformat(code["expires_at"])
    assert abs((expires_at - datetime.now(UTC) - timedelta(seconds=900)).total_seconds()) < EXPIRES_SLACK_S
    assert code["reference"] == "INV-1" and parse_payload(code["payload"]).reference == "INV-1"
    await _top_up(client, key, payer)

    async def pay(**body: Any) -> httpx.Response:
        return await client.post(
            "/v1/payments", json={"payer": payer, "qr": code["payload"], **body}, headers=_auth(key)
        )

    _assert_problem(await pay(amount=24_999), 422, "invalid_parameter", "amount")
    _assert_problem(await pay(kind="p2p"), 422, "invalid_parameter", "kind")
    payment = await _pay(client, key, payer=payer, qr=code["payload"])
    assert payment["amount"] == 25_000 and payment["kind"] == "p2m" and payment["payee"] == merchant, payment
    _assert_problem(await pay(), 409, "qr_already_paid", "qr")
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "succeeded"
    assert await _ledger_kind(api.config, payment["id"]) == "p2m_dynamic_qr"
    assert await _available(client, key, merchant) == 25_000
    assert await _available(client, key, payer) == TOP_UP - 25_000
    _assert_problem(await pay(amount=25_000), 409, "qr_already_paid", "qr")
    lower_case_crc = code["payload"][:-4] + code["payload"][-4:].lower()
    if lower_case_crc != code["payload"]:  # the same code, spelt differently
        again = await client.post("/v1/payments", json={"payer": payer, "qr": lower_case_crc}, headers=_auth(key))
        _assert_problem(again, 409, "qr_already_paid", "qr")


async def test_a_dynamic_code_whose_payment_failed_can_be_paid_again(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """The first payer has no money: failed (exceeds_credits); the code is free again and a funded payer pays it."""
    key = await _tenant_key(api.config, "second chance")
    broke, rich, merchant = await _open(client, key), await _open(client, key), await _merchant(client, key)
    code = await _code(client, key, merchant=merchant, type="dynamic", amount=5_000)
    await _top_up(client, key, rich)
    failed = await _pay(client, key, payer=broke, qr=code["payload"])
    await _settle(api.config)
    assert (await _payment(client, key, failed["id"]))["failure_code"] == "exceeds_credits"
    paid = await _pay(client, key, payer=rich, qr=code["payload"])
    await _settle(api.config)
    assert (await _payment(client, key, paid["id"]))["status"] == "succeeded"
    assert await _available(client, key, merchant) == 5_000


async def test_two_concurrent_payments_of_one_dynamic_code_one_wins(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Two payers at once on one dynamic code: exactly one 202, the other 409 qr_already_paid."""
    key = await _tenant_key(api.config, "race")
    first, second, merchant = await _open(client, key), await _open(client, key), await _merchant(client, key)
    code = await _code(client, key, merchant=merchant, type="dynamic", amount=700)
    responses = await asyncio.gather(
        *(
            client.post("/v1/payments", json={"payer": payer, "qr": code["payload"]}, headers=_auth(key))
            for payer in (first, second)
        )
    )
    assert sorted(response.status_code for response in responses) == [202, 409], [r.text for r in responses]


async def test_a_tampered_expired_or_foreign_code_is_refused(api: RunningApi, client: httpx.AsyncClient) -> None:
    """One changed character → 422 qr_invalid naming the CRC; an expired dynamic code → 422 qr_expired; another
    tenant's code → 404 (read, image and payment alike); a payload that is no sandbox code → 422 qr_invalid."""
    owner, stranger = await _tenant_key(api.config, "qr owner"), await _tenant_key(api.config, "qr stranger")
    payer, merchant = await _open(client, owner), await _merchant(client, owner)
    code = await _code(client, owner, merchant=merchant, type="dynamic", amount=1_000)
    await _top_up(client, owner, payer)

    async def pay(qr: str, key: str = owner, payer: str = payer) -> httpx.Response:
        return await client.post("/v1/payments", json={"payer": payer, "qr": qr}, headers=_auth(key))

    text = code["payload"]
    at = text.index("540510.00") + 4  # tag 54, the amount: 10.00 rupees → 90.00
    tampered = text[:at] + "9" + text[at + 1 :]
    assert len(tampered) == len(text) and tampered != text
    problem = _assert_problem(await pay(tampered), 422, "qr_invalid", "qr")
    assert "CRC" in problem["detail"], problem

    expired = QrPayload(
        merchant_account=merchant,
        merchant_name="Expired Checkout",
        merchant_city="Peshawar",
        merchant_category_code="5411",
        amount=1_000,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    _assert_problem(await pay(encode_payload(expired)), 422, "qr_expired", "qr")
    _assert_problem(await pay("hello, not a QR"), 422, "qr_invalid", "qr")

    for path in (f"/v1/qr_codes/{code['id']}", code["image_url"]):
        _assert_problem(await client.get(path, headers=_auth(stranger)), 404, "not_found", "qr_code_id")
    _assert_problem(
        await client.get("/v1/qr_codes/qr_" + "0" * 32, headers=_auth(owner)), 404, "not_found", "qr_code_id"
    )
    own_payer = await _open(client, stranger)
    _assert_problem(await pay(text, key=stranger, payer=own_payer), 404, "not_found", "qr")
    await _settle(api.config)
    assert await _available(client, owner, merchant) == 0, "no refused code moved money"


async def test_bad_qr_code_requests_are_4xx_problems(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Static with an amount or expiry, dynamic without an amount, a citizen's or another tenant's account,
    values the payload format cannot carry, a district tag 60 cannot hold: each a 4xx naming its parameter."""
    key, stranger = await _tenant_key(api.config, "qr careless"), await _tenant_key(api.config, "qr other")
    merchant, citizen = await _merchant(client, key), await _open(client, key)
    foreign = await _merchant(client, stranger)

    async def make(**body: Any) -> httpx.Response:
        return await client.post("/v1/qr_codes", json={"merchant": merchant, **body}, headers=_auth(key))

    _assert_problem(await make(type="static", amount=100), 422, "parameter_unexpected", "amount")
    _assert_problem(await make(type="static", expires_in=60), 422, "parameter_unexpected", "expires_in")
    _assert_problem(await make(type="dynamic"), 422, "parameter_missing", "amount")
    _assert_problem(await make(type="dynamic", amount=10**12), 422, "invalid_parameter", "amount")
    _assert_problem(await make(type="dynamic", amount=100.0), 422, "invalid_parameter", "amount")
    _assert_problem(await make(type="dynamic", amount=1, reference="R" * 26), 422, "invalid_parameter", "reference")
    _assert_problem(await make(type="dynamic", amount=1, bill_number="bill ü"), 422, "invalid_parameter", "bill_number")
    _assert_problem(await make(type="rotating"), 422, "invalid_parameter", "type")
    _assert_problem(await make(type="static", merchant=citizen), 422, "invalid_parameter", "merchant")
    _assert_problem(await make(type="static", merchant=foreign), 404, "not_found", "merchant")
    far = await _merchant(client, key, district="Dera Ismail Khan")
    _assert_problem(await make(type="static", merchant=far), 422, "parameter_missing", "merchant_city")
    code = await _code(client, key, merchant=far, type="static", merchant_city="D.I. Khan", merchant_name="Gul Store")
    assert parse_payload(code["payload"]).merchant_city == "D.I. Khan"
    assert parse_payload(code["payload"]).merchant_name == "Gul Store"


async def test_a_payment_by_iban_pays_the_bank_account_holding_it(api: RunningApi, client: httpx.AsyncClient) -> None:
    """`payee_iban` (spaces and lower case forgiven) pays the tenant's bank account with that IBAN; a wrong check
    digit or shape → 422 payee_iban; a valid IBAN nobody of this tenant holds → 404; one payee way only."""
    key, stranger = await _tenant_key(api.config, "iban payer"), await _tenant_key(api.config, "iban other")
    payer = await _open(client, key)
    bank = await _account(client, key, kind="citizen_bank", district="Swat", gender="male")
    foreign = await _account(client, stranger, kind="citizen_bank", district="Swat", gender="female")
    iban: str = bank["iban"]
    await _top_up(client, key, payer)
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)).lower()
    payment = await _pay(client, key, payer=payer, payee_iban=spaced, amount=40_000)
    assert payment["payee"] == bank["id"], payment
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "succeeded"
    assert await _available(client, key, bank["id"]) == 40_000

    async def pay(**body: Any) -> httpx.Response:
        return await client.post("/v1/payments", json={"payer": payer, "amount": 1, **body}, headers=_auth(key))

    wrong_digit = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    problem = _assert_problem(await pay(payee_iban=wrong_digit), 422, "invalid_parameter", "payee_iban")
    assert "check digits" in problem["detail"], problem
    _assert_problem(await pay(payee_iban="PK12"), 422, "invalid_parameter", "payee_iban")
    _assert_problem(await pay(payee_iban="GB82WEST12345698765432"), 422, "invalid_parameter", "payee_iban")
    _assert_problem(await pay(payee_iban=foreign["iban"]), 404, "not_found", "payee_iban")
    _assert_problem(await pay(payee=bank["id"], payee_iban=iban), 422, "parameter_unexpected", "payee_iban")
    _assert_problem(await pay(payee_iban=iban, qr="00020101"), 422, "parameter_unexpected", "qr")
    _assert_problem(await pay(payee_alias=_msisdn(), payee_iban=iban), 422, "parameter_unexpected", "payee_iban")
    nobody = await client.post("/v1/payments", json={"payer": payer, "amount": 1}, headers=_auth(key))
    _assert_problem(nobody, 422, "parameter_missing", "payee")
    _assert_problem(await pay(payee_iban=iban, amount=None), 422, "invalid_parameter", "amount")
