"""Refunds through a real uvicorn server (`python -m producers.api`) on the test stack's Kafka and PostgreSQL,
decided by the ledger and brought back by the views consumer: full and partial refunds move both balances
back, over-refunds and refunds of unsettled payments are refused, a payee without the money fails the refund,
concurrent refunds never pay back more than was captured, and tenants stay apart (issue 9, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import asyncpg
import httpx
import pytest

from infra.settings import Settings
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _assert_problem, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import TOP_UP, _available, _open, _pay, _payment, _settle, _top_up

PATH: Final = "/v1/refunds"
PAID: Final = 100_000
CONCURRENT_REFUNDS: Final = 8


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-refund-state"), "api_refund") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _paid(client: httpx.AsyncClient, api: RunningApi, key: str, amount: int = PAID) -> tuple[str, str, str]:
    """A payer (topped up with TOP_UP), a payee and a succeeded payment of `amount` between them."""
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=amount)
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "succeeded"
    return payer, payee, str(payment["id"])


async def _refund(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post(PATH, json=body, headers=_auth(key))
    assert response.status_code == 202, response.text
    refund: dict[str, Any] = response.json()
    assert refund["status"] == "processing" and refund["id"].startswith("re_") and len(refund["id"]) == 35, refund
    return refund


async def _read(client: httpx.AsyncClient, key: str, refund_id: str) -> dict[str, Any]:
    response = await client.get(f"{PATH}/{refund_id}", headers=_auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _reserved(config: Settings, payment_id: str) -> int:
    connection = await asyncpg.connect(config.dsn)
    try:
        reserved: int = await connection.fetchval(
            "SELECT amount_refund_reserved FROM api_payments WHERE id = $1", payment_id
        )
    finally:
        await connection.close()
    return reserved


async def test_a_full_refund_moves_both_balances_back(api: RunningApi, client: httpx.AsyncClient) -> None:
    """No amount: the whole payment is refunded; succeeded once settled, balances as before the payment, the
    payment still succeeded with amount_refunded = amount_captured; a further refund is 409."""
    key = await _tenant_key(api.config, "shop")
    payer, payee, payment_id = await _paid(client, api, key)
    assert (await _payment(client, key, payment_id))["amount_refunded"] == 0
    refund = await _refund(client, key, payment=payment_id, reason="requested_by_customer")
    assert refund["amount"] == PAID and refund["payment"] == payment_id and refund["reason"] == "requested_by_customer"
    await _settle(api.config)
    done = await _read(client, key, refund["id"])
    assert done["status"] == "succeeded" and done["failure_code"] is None, done
    payment = await _payment(client, key, payment_id)
    assert payment["status"] == "succeeded" and payment["amount_refunded"] == payment["amount_captured"] == PAID
    assert await _available(client, key, payer) == TOP_UP
    assert await _available(client, key, payee) == 0
    again = await client.post(PATH, json={"payment": payment_id, "amount": 1}, headers=_auth(key))
    _assert_problem(again, 409, "payment_not_refundable", "payment")


async def test_two_partial_refunds_add_up_and_the_rest_is_guarded(api: RunningApi, client: httpx.AsyncClient) -> None:
    """30 000 then 50 000 of 100 000: amount_refunded 80 000; asking 20 001 more is 422 on amount; the rest
    (no amount) is 20 000, `?wait` returns it settled."""
    key = await _tenant_key(api.config, "partial shop")
    payer, payee, payment_id = await _paid(client, api, key)
    first = await _refund(client, key, payment=payment_id, amount=30_000)
    second = await _refund(client, key, payment=payment_id, amount=50_000)
    too_much = await client.post(PATH, json={"payment": payment_id, "amount": 20_001}, headers=_auth(key))
    _assert_problem(too_much, 422, "invalid_parameter", "amount")
    await _settle(api.config)
    assert [(await _read(client, key, r["id"]))["status"] for r in (first, second)] == ["succeeded", "succeeded"]
    assert (await _payment(client, key, payment_id))["amount_refunded"] == 80_000
    assert await _available(client, key, payer) == TOP_UP - PAID + 80_000
    assert await _available(client, key, payee) == PAID - 80_000

    rest = await _refund(client, key, payment=payment_id)
    assert rest["amount"] == 20_000
    waiting = asyncio.create_task(
        client.get(f"{PATH}/{rest['id']}", params={"wait": 10}, headers=_auth(key), timeout=15)
    )
    await _settle(api.config)
    assert (await waiting).json()["status"] == "succeeded"
    assert (await _payment(client, key, payment_id))["amount_refunded"] == PAID


async def test_a_payee_that_spent_the_money_fails_the_refund_and_frees_the_amount(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """The payee paid the money on: its refund fails with exceeds_credits, nothing moves, the payment's
    amount_refunded stays 0 and the amount is refundable again."""
    key = await _tenant_key(api.config, "spender")
    payer, payee, payment_id = await _paid(client, api, key)
    elsewhere = await _open(client, key)
    onward = await _pay(client, key, payer=payee, payee=elsewhere, amount=PAID)
    await _settle(api.config)
    assert (await _payment(client, key, onward["id"]))["status"] == "succeeded"
    refund = await _refund(client, key, payment=payment_id, amount=40_000)
    assert await _reserved(api.config, payment_id) == 40_000
    await _settle(api.config)
    failed = await _read(client, key, refund["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "exceeds_credits", failed
    assert failed["failure_message"]
    assert (await _payment(client, key, payment_id))["amount_refunded"] == 0
    assert await _reserved(api.config, payment_id) == 0
    assert await _available(client, key, payer) == TOP_UP - PAID
    retry = await _refund(client, key, payment=payment_id)
    assert retry["amount"] == PAID


async def test_only_a_succeeded_payment_can_be_refunded(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A processing payment and a failed one (never funded) are 409 payment_not_refundable, nothing stored."""
    key = await _tenant_key(api.config, "impatient")
    payer, payee = await _open(client, key), await _open(client, key)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=1_000)
    processing = await client.post(PATH, json={"payment": payment["id"]}, headers=_auth(key))
    _assert_problem(processing, 409, "payment_not_refundable", "payment")
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "failed"
    failed = await client.post(PATH, json={"payment": payment["id"], "amount": 1}, headers=_auth(key))
    _assert_problem(failed, 409, "payment_not_refundable", "payment")
    connection = await asyncpg.connect(api.config.dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM api_refunds WHERE payment_id = $1", payment["id"]) == 0
    finally:
        await connection.close()


async def test_concurrent_refunds_never_refund_more_than_was_captured(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """Eight refunds of 30 000 of a 100 000 payment at once: exactly three are accepted, the rest refused
    (422/409), and once settled the payer has exactly 90 000 back."""
    key = await _tenant_key(api.config, "rush")
    payer, payee, payment_id = await _paid(client, api, key)
    answers = await asyncio.gather(
        *(
            client.post(PATH, json={"payment": payment_id, "amount": 30_000}, headers=_auth(key))
            for _ in range(CONCURRENT_REFUNDS)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(202) == 3 and set(statuses) <= {202, 409, 422}, [a.text for a in answers]
    assert await _reserved(api.config, payment_id) == 90_000
    await _settle(api.config)
    assert (await _payment(client, key, payment_id))["amount_refunded"] == 90_000
    assert await _available(client, key, payer) == TOP_UP - PAID + 90_000
    assert await _available(client, key, payee) == PAID - 90_000


async def test_another_tenants_payment_and_refund_are_404(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A tenant cannot refund another's payment nor read its refund: 404 as for ids nobody has."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    _payer, _payee, payment_id = await _paid(client, api, owner)
    refund = await _refund(client, owner, payment=payment_id, amount=1_000)
    stolen = await client.post(PATH, json={"payment": payment_id}, headers=_auth(stranger))
    _assert_problem(stolen, 404, "not_found", "payment")
    _assert_problem(await client.get(f"{PATH}/{refund['id']}", headers=_auth(stranger)), 404, "not_found", "refund_id")
    assert (await _read(client, owner, refund["id"]))["amount"] == 1_000
    assert await _reserved(api.config, payment_id) == 1_000  # the stranger's attempt reserved nothing


async def test_bad_refunds_are_4xx_problems(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Wrong amounts, an unknown reason or field, no payment, an unknown payment: each a 4xx naming its param."""
    key = await _tenant_key(api.config, "careless shop")

    async def refund(**body: Any) -> httpx.Response:
        return await client.post(PATH, json={"payment": "pay_" + "0" * 32, **body}, headers=_auth(key))

    for amount in (100.0, "100", 0, -1, True):
        _assert_problem(await refund(amount=amount), 422, "invalid_parameter", "amount")
    _assert_problem(await refund(reason="changed my mind"), 422, "invalid_parameter", "reason")
    _assert_problem(await refund(note="x"), 422, "parameter_unexpected", "note")
    _assert_problem(await client.post(PATH, json={}, headers=_auth(key)), 422, "parameter_missing", "payment")
    _assert_problem(await refund(), 404, "not_found", "payment")
    _assert_problem(await client.get(f"{PATH}/re_" + "0" * 32, headers=_auth(key)), 404, "not_found", "refund_id")
    bad_wait = await client.get(f"{PATH}/re_" + "0" * 32, params={"wait": 11}, headers=_auth(key))
    _assert_problem(bad_wait, 422, "invalid_parameter", "wait")
