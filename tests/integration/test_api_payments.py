"""Top-ups and payments through a real uvicorn server (`python -m producers.api`) on the test stack's Kafka
and PostgreSQL, settled by the ledger and brought back by the views consumer (`consumers.views`): statuses
from the ledger's outcomes, balances moved, manual capture and cancel, `?wait`, tenant isolation and bad
input (issue 9, item 4)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import asyncpg
import httpx
import pytest

from consumers.ledger.consumer import Settler
from consumers.views.consumer import run_until_idle
from infra.settings import Settings
from producers.api.polling import WATCHED_POLL_S
from tests.integration.test_api import (
    HTTP_TIMEOUT_S,
    RunningApi,
    _assert_problem,
    _auth,
    _tenant_key,
    _wallet,
    running_api,
)

SETTLE_TIMEOUT_S: Final = 60.0
TOP_UP: Final = 500_000
WAIT_SLACK_S: Final = 1.5  # how much later than asked a timed-out wait may answer


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-pay-state"), "api_pay") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _settle(config: Settings) -> None:
    """The ledger decides everything published so far, then the views consumer applies its outcomes."""
    await asyncio.wait_for(Settler(config).run(until_idle=True), SETTLE_TIMEOUT_S)
    await run_until_idle(config, timeout_s=SETTLE_TIMEOUT_S)


def _msisdn() -> str:
    return "0345" + f"{uuid.uuid4().int % 10**7:07d}"


async def _open(client: httpx.AsyncClient, key: str, msisdn: str | None = None) -> str:
    response = await client.post("/v1/accounts", json=_wallet(msisdn or _msisdn()), headers=_auth(key))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _top_up(client: httpx.AsyncClient, key: str, account: str, amount: int = TOP_UP) -> dict[str, Any]:
    response = await client.post(
        "/v1/test_helpers/top_ups", json={"account": account, "amount": amount}, headers=_auth(key)
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "processing" and body["id"].startswith("tu_"), body
    return body


async def _pay(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/payments", json=body, headers=_auth(key))
    assert response.status_code == 202, response.text
    payment: dict[str, Any] = response.json()
    assert payment["status"] == "processing" and payment["id"].startswith("pay_"), payment
    return payment


async def _payment(client: httpx.AsyncClient, key: str, payment_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/payments/{payment_id}", headers=_auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _available(client: httpx.AsyncClient, key: str, account: str) -> int:
    response = await client.get(f"/v1/accounts/{account}", headers=_auth(key))
    assert response.status_code == 200, response.text
    return int(response.json()["balance"]["available"])


async def test_a_top_up_then_a_p2p_payment_by_id_succeeds_and_moves_both_balances(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """Top-up → succeeded; a p2p payment by id → succeeded with amount_captured; both balances moved."""
    key = await _tenant_key(api.config, "wallet app")
    payer, payee = await _open(client, key), await _open(client, key)
    top_up = await _top_up(client, key, payer)
    await _settle(api.config)
    read = await client.get(f"/v1/test_helpers/top_ups/{top_up['id']}", headers=_auth(key))
    assert read.json()["status"] == "succeeded", read.text
    assert await _available(client, key, payer) == TOP_UP

    payment = await _pay(client, key, payer=payer, payee=payee, amount=25_000)
    assert payment["kind"] == "p2p" and payment["capture_method"] == "automatic" and payment["amount_captured"] == 0
    await _settle(api.config)
    done = await _payment(client, key, payment["id"])
    assert done["status"] == "succeeded" and done["amount_captured"] == 25_000, done
    assert done["failure_code"] is None
    assert await _available(client, key, payer) == TOP_UP - 25_000
    assert await _available(client, key, payee) == 25_000


async def test_a_payment_to_an_alias_pays_the_account_holding_it(api: RunningApi, client: httpx.AsyncClient) -> None:
    """`payee_alias` (a mobile number in any accepted form) resolves to the tenant's account holding it."""
    key = await _tenant_key(api.config, "alias payer")
    number = _msisdn()
    payer, payee = await _open(client, key), await _open(client, key, number)
    await _top_up(client, key, payer)
    payment = await _pay(client, key, payer=payer, payee_alias="+92" + number[1:], amount=10_000)
    assert payment["payee"] == payee and number[1:] not in str(payment)
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "succeeded"
    assert await _available(client, key, payee) == 10_000
    unknown = await client.post(
        "/v1/payments", json={"payer": payer, "payee_alias": _msisdn(), "amount": 1}, headers=_auth(key)
    )
    _assert_problem(unknown, 404, "not_found", "payee_alias")


async def test_a_payment_beyond_the_balance_fails_with_exceeds_credits(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A wallet that was never topped up cannot pay: failed, failure_code exceeds_credits, nothing moved."""
    key = await _tenant_key(api.config, "broke")
    payer, payee = await _open(client, key), await _open(client, key)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=1_000)
    await _settle(api.config)
    failed = await _payment(client, key, payment["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "exceeds_credits", failed
    assert failed["failure_message"] and failed["amount_captured"] == 0
    assert await _available(client, key, payee) == 0


async def test_a_manual_payment_is_captured_in_part(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Manual capture: requires_capture (amount reserved) → partial capture → succeeded with amount_captured;
    a second capture is 409 payment_not_capturable."""
    key = await _tenant_key(api.config, "shop")
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    payment = await _pay(
        client, key, payer=payer, payee=payee, amount=100_000, kind="ecommerce", capture_method="manual"
    )
    assert payment["expires_at"] is not None
    await _settle(api.config)
    authorised = await _payment(client, key, payment["id"])
    assert authorised["status"] == "requires_capture", authorised
    assert await _available(client, key, payer) == TOP_UP - 100_000

    capture = await client.post(f"/v1/payments/{payment['id']}/capture", json={"amount": 60_000}, headers=_auth(key))
    assert capture.status_code == 202 and capture.json()["status"] == "processing", capture.text
    await _settle(api.config)
    captured = await _payment(client, key, payment["id"])
    assert captured["status"] == "succeeded" and captured["amount_captured"] == 60_000, captured
    assert await _available(client, key, payer) == TOP_UP - 60_000
    assert await _available(client, key, payee) == 60_000
    again = await client.post(f"/v1/payments/{payment['id']}/capture", headers=_auth(key))
    _assert_problem(again, 409, "payment_not_capturable")


async def test_a_canceled_authorisation_releases_the_reservation(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Cancel of a requires_capture payment → canceled, the payer's balance whole again; cancel again is 409."""
    key = await _tenant_key(api.config, "canceller")
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=70_000, capture_method="manual", expires_in=60)
    await _settle(api.config)
    early = await client.post(f"/v1/payments/{payment['id']}/capture", json={"amount": 70_001}, headers=_auth(key))
    _assert_problem(early, 422, "invalid_parameter", "amount")
    cancel = await client.post(f"/v1/payments/{payment['id']}/cancel", headers=_auth(key))
    assert cancel.status_code == 202 and cancel.json()["status"] == "processing", cancel.text
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "canceled"
    assert await _available(client, key, payer) == TOP_UP
    _assert_problem(await client.post(f"/v1/payments/{payment['id']}/cancel", headers=_auth(key)), 409,
                    "payment_not_capturable")  # fmt: skip


async def test_wait_returns_once_final_and_times_out_otherwise(api: RunningApi, client: httpx.AsyncClient) -> None:
    """`?wait=N` answers `processing` after about N s while nothing settles, and well before N s once it does."""
    key = await _tenant_key(api.config, "waiter")
    payer, payee = await _open(client, key), await _open(client, key)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=500)

    started = time.monotonic()
    response = await client.get(f"/v1/payments/{payment['id']}", params={"wait": 1}, headers=_auth(key))
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "processing" and 1.0 <= elapsed < 1.0 + WAIT_SLACK_S, elapsed

    wait_s = 10
    started = time.monotonic()
    waiting = asyncio.create_task(
        client.get(f"/v1/payments/{payment['id']}", params={"wait": wait_s}, headers=_auth(key), timeout=wait_s + 5)
    )
    await _settle(api.config)
    response = await waiting
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "failed", response.text  # never topped up: exceeds_credits
    assert elapsed < wait_s, elapsed
    for bad in ("0", "10.5", "-1", "soon"):
        bad_wait = await client.get(f"/v1/payments/{payment['id']}", params={"wait": bad}, headers=_auth(key))
        _assert_problem(bad_wait, 422, "invalid_parameter", "wait")


async def test_a_waiting_read_answers_when_the_status_changes_not_at_its_next_read(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A change of the payment's status wakes a `?wait` at once (PostgreSQL's notification, migration 0039,
    heard by producers/api/payment_changes.py), not at the waiter's next fallback read WATCHED_POLL_S later.
    The row is changed here as the views consumer changes it."""
    key = await _tenant_key(api.config, "notified")
    payer, payee = await _open(client, key), await _open(client, key)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=500)
    connection = await asyncpg.connect(api.config.dsn)
    try:
        waiting = asyncio.create_task(
            client.get(f"/v1/payments/{payment['id']}", params={"wait": 5}, headers=_auth(key), timeout=10)
        )
        await asyncio.sleep(WATCHED_POLL_S / 5)  # the waiter has read `processing`; its next read is 0.4 s away
        changed_at = time.monotonic()
        await connection.execute(
            "UPDATE api_payments SET status = 'failed', failure_code = 'exceeds_credits', awaiting_event_id = NULL"
            " WHERE id = $1",
            payment["id"],
        )
    finally:
        await connection.close()
    response = await waiting
    answered_after_s = time.monotonic() - changed_at
    assert response.json()["status"] == "failed", response.text
    assert answered_after_s < WATCHED_POLL_S * 0.3, answered_after_s  # without the notification: ~0.4 s


async def test_another_tenants_payment_and_accounts_are_404(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A tenant cannot read, capture or cancel another's payment, nor pay from or to another's accounts."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    payer, payee = await _open(client, owner), await _open(client, owner)
    own = await _open(client, stranger)
    payment = await _pay(client, owner, payer=payer, payee=payee, amount=100)
    path = f"/v1/payments/{payment['id']}"
    _assert_problem(await client.get(path, headers=_auth(stranger)), 404, "not_found", "payment_id")
    _assert_problem(await client.post(f"{path}/capture", headers=_auth(stranger)), 404, "not_found", "payment_id")
    _assert_problem(await client.post(f"{path}/cancel", headers=_auth(stranger)), 404, "not_found", "payment_id")
    headers = _auth(stranger)
    stolen = await client.post("/v1/payments", json={"payer": payer, "payee": own, "amount": 1}, headers=headers)
    _assert_problem(stolen, 404, "not_found", "payer")
    gift = await client.post("/v1/payments", json={"payer": own, "payee": payee, "amount": 1}, headers=headers)
    _assert_problem(gift, 404, "not_found", "payee")
    top_up = await client.post("/v1/test_helpers/top_ups", json={"account": payer, "amount": 1}, headers=headers)
    _assert_problem(top_up, 404, "not_found", "account")
    _assert_problem(await client.get(path, headers={}), 401, "unauthorized", "Authorization")


async def test_bad_payments_are_4xx_problems(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Float, string, zero and negative amounts, the same account twice, payee and alias both or neither,
    an expiry without manual capture: each a 4xx problem naming its parameter, and nothing stored."""
    key = await _tenant_key(api.config, "careless payer")
    payer, payee = await _open(client, key), await _open(client, key)

    async def pay(**body: Any) -> httpx.Response:
        return await client.post("/v1/payments", json={"payer": payer, "payee": payee, **body}, headers=_auth(key))

    for amount in (250.0, 250.5, "250", 0, -5, True, None):
        _assert_problem(await pay(amount=amount), 422, "invalid_parameter", "amount")
    _assert_problem(await pay(), 422, "parameter_missing", "amount")
    same = await client.post("/v1/payments", json={"payer": payer, "payee": payer, "amount": 1}, headers=_auth(key))
    _assert_problem(same, 400, "accounts_must_be_different", "payee")
    _assert_problem(await pay(amount=1, payee_alias="03001234567"), 422, "parameter_unexpected", "payee_alias")
    neither = await client.post("/v1/payments", json={"payer": payer, "amount": 1}, headers=_auth(key))
    _assert_problem(neither, 422, "parameter_missing", "payee")
    _assert_problem(await pay(amount=1, expires_in=60), 422, "parameter_unexpected", "expires_in")
    _assert_problem(
        await pay(amount=1, capture_method="manual", expires_in=1.5), 422, "invalid_parameter", "expires_in"
    )
    _assert_problem(await pay(amount=1, kind="loan"), 422, "invalid_parameter", "kind")
    _assert_problem(await pay(amount=1, payee="acc_" + "0" * 32), 404, "not_found", "payee")
    for amount in (100.0, "100", -1):
        top_up = await client.post(
            "/v1/test_helpers/top_ups", json={"account": payer, "amount": amount}, headers=_auth(key)
        )
        _assert_problem(top_up, 422, "invalid_parameter", "amount")
    bad_capture = await client.post(
        "/v1/payments/pay_" + "0" * 32 + "/capture", json={"amount": 1.0}, headers=_auth(key)
    )
    _assert_problem(bad_capture, 422, "invalid_parameter", "amount")
