"""Every magic value through the running API, Kafka, the ledger and the views consumer (issue 9,
item 6), and an authorisation that expires on its own, by the API's scheduler (item 4)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx
import pytest

from infra.settings import Settings
from schemas.api.magic import (
    DELAYED_SUCCESS_S,
    MAGIC_VALUES,
    NO_ANSWER_TIMEOUT_S,
    PAYEE_DELAYED_SUCCESS,
    PAYEE_INSUFFICIENT_FUNDS,
    PAYEE_LIMIT_EXCEEDED,
    PAYEE_NO_ANSWER,
    PAYEE_NOT_FOUND,
    PAYER_DECLINES_REQUEST,
)
from tests.integration.test_api import (
    HTTP_TIMEOUT_S,
    RunningApi,
    _assert_problem,
    _auth,
    _tenant_key,
    _wallet,
    running_api,
)
from tests.integration.test_api_payments import (
    TOP_UP,
    _available,
    _open,
    _pay,
    _payment,
    _settle,
    _top_up,
)

AMOUNT: Final = 10_000
SCHEDULER_SLACK_S: Final = 5.0  # how much later than due the scheduler's work may be seen done
POLL_S: Final = 0.5


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-magic-state"), "api_magic") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _funded_payer(api: RunningApi, client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """A new tenant's key and one of its wallets holding TOP_UP paisa."""
    key = await _tenant_key(api.config, name)
    payer = await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    assert await _available(client, key, payer) == TOP_UP
    return key, payer


async def _settled_until(
    api: RunningApi, client: httpx.AsyncClient, key: str, payment_id: str, status: str, *, within_s: float
) -> dict[str, Any]:
    """Settles and reads the payment until it has `status`; fails after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        await _settle(api.config)
        payment = await _payment(client, key, payment_id)
        if payment["status"] == status or time.monotonic() > deadline:
            assert payment["status"] == status, payment
            return payment
        await asyncio.sleep(POLL_S)


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        (PAYEE_NOT_FOUND, "account_not_found"),
        (PAYEE_INSUFFICIENT_FUNDS, "exceeds_credits"),
        (PAYEE_LIMIT_EXCEEDED, "payee_limit_exceeded"),
    ],
)
async def test_a_magic_payee_fails_with_the_ledger_s_code_and_moves_nothing(
    api: RunningApi, client: httpx.AsyncClient, alias: str, code: str
) -> None:
    """Each failing magic payee: `failed` with the ledger's result code; the payer's balance is untouched."""
    key, payer = await _funded_payer(api, client, f"magic {code}")
    payment = await _pay(client, key, payer=payer, payee_alias=alias, amount=AMOUNT)
    assert payment["payer"] == payer and payment["payee"] != payer
    await _settle(api.config)
    done = await _payment(client, key, payment["id"])
    assert (done["status"], done["failure_code"]) == ("failed", code), done
    assert done["failure_message"]
    assert await _available(client, key, payer) == TOP_UP
    again = await _pay(client, key, payer=payer, payee_alias=alias, amount=AMOUNT)
    assert again["payee"] == payment["payee"], "one magic account per tenant and behaviour"


async def test_delayed_success_stays_processing_then_succeeds(api: RunningApi, client: httpx.AsyncClient) -> None:
    """The delayed-success payee: nothing reaches the ledger for DELAYED_SUCCESS_S, then it settles."""
    key, payer = await _funded_payer(api, client, "magic delayed")
    started = time.monotonic()
    payment = await _pay(client, key, payer=payer, payee_alias=PAYEE_DELAYED_SUCCESS, amount=AMOUNT)
    await _settle(api.config)
    if time.monotonic() - started < DELAYED_SUCCESS_S:
        assert (await _payment(client, key, payment["id"]))["status"] == "processing"
    done = await _settled_until(
        api, client, key, payment["id"], "succeeded", within_s=DELAYED_SUCCESS_S + SCHEDULER_SLACK_S
    )
    assert time.monotonic() - started >= DELAYED_SUCCESS_S
    assert done["amount_captured"] == AMOUNT
    assert await _available(client, key, payer) == TOP_UP - AMOUNT


async def test_no_answer_times_out_and_moves_nothing(api: RunningApi, client: httpx.AsyncClient) -> None:
    """The no-answer payee: `processing` until NO_ANSWER_TIMEOUT_S, then `failed` / `timed_out`."""
    key, payer = await _funded_payer(api, client, "magic silent")
    started = time.monotonic()
    payment = await _pay(client, key, payer=payer, payee_alias=PAYEE_NO_ANSWER, amount=AMOUNT)
    early = await _payment(client, key, payment["id"])
    if time.monotonic() - started < NO_ANSWER_TIMEOUT_S:
        assert early["status"] == "processing"
    deadline = started + NO_ANSWER_TIMEOUT_S + SCHEDULER_SLACK_S
    while (current := await _payment(client, key, payment["id"]))["status"] == "processing":
        assert time.monotonic() < deadline, current
        await asyncio.sleep(POLL_S)
    assert (current["status"], current["failure_code"]) == ("failed", "timed_out"), current
    assert time.monotonic() - started >= NO_ANSWER_TIMEOUT_S
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "failed"
    assert await _available(client, key, payer) == TOP_UP


async def test_an_authorisation_expires_by_itself_and_releases_the_money(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """`capture_method: manual` with `expires_in: 1`: requires_capture, then — with no other request
    from anyone — expired once the time has passed, and the reservation is released."""
    key, payer = await _funded_payer(api, client, "magic expiry")
    payee = await _open(client, key)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=AMOUNT, capture_method="manual", expires_in=1)
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] in ("requires_capture", "expired")
    done = await _settled_until(api, client, key, payment["id"], "expired", within_s=1 + SCHEDULER_SLACK_S)
    assert done["amount_captured"] == 0
    assert await _available(client, key, payer) == TOP_UP
    late = await client.post(f"/v1/payments/{payment['id']}/capture", headers=_auth(key))
    _assert_problem(late, 409, "payment_not_capturable")


async def test_magic_numbers_cannot_open_accounts_and_magic_accounts_cannot_be_topped_up_or_pay(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    key, payer = await _funded_payer(api, client, "magic guards")
    for number in (PAYEE_NOT_FOUND, PAYER_DECLINES_REQUEST):
        opened = await client.post("/v1/accounts", json=_wallet(number), headers=_auth(key))
        _assert_problem(opened, 422, "magic_number", "msisdn")
    payment = await _pay(client, key, payer=payer, payee_alias=PAYEE_INSUFFICIENT_FUNDS, amount=AMOUNT)
    magic = payment["payee"]
    top_up = await client.post("/v1/test_helpers/top_ups", json={"account": magic, "amount": 1}, headers=_auth(key))
    _assert_problem(top_up, 422, "magic_account", "account")
    paying = await client.post("/v1/payments", json={"payer": magic, "payee": payer, "amount": 1}, headers=_auth(key))
    _assert_problem(paying, 422, "magic_account", "payer")


async def test_the_magic_values_endpoint_serves_the_table(api: RunningApi, client: httpx.AsyncClient) -> None:
    key = await _tenant_key(api.config, "magic reader")
    response = await client.get("/v1/test_helpers/magic_values", headers=_auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [row.model_dump(mode="json") for row in MAGIC_VALUES]
    anonymous = await client.get("/v1/test_helpers/magic_values")
    _assert_problem(anonymous, 401, "unauthorized", "Authorization")


async def test_a_level_0_wallet_s_daily_limit_is_enforced_by_the_ledger(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A wallet opened in SBP's level_0 (daily Rs 25,000): a payment above it fails with the ledger's
    `payer_limit_exceeded`, before its balance is looked at; `tier` is for wallets only."""
    key = await _tenant_key(api.config, "tiers")
    opened = await client.post("/v1/accounts", json=_wallet(_fresh_number(), tier="level_0"), headers=_auth(key))
    assert opened.status_code == 201 and opened.json()["tier"] == "level_0", opened.text
    payer, payee = opened.json()["id"], await _open(client, key)
    default = (await client.get(f"/v1/accounts/{payee}", headers=_auth(key))).json()
    assert default["tier"] == "level_1"
    await _top_up(client, key, payer, 2_000_000)
    await _settle(api.config)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=2_600_000)
    await _settle(api.config)
    done = await _payment(client, key, payment["id"])
    assert (done["status"], done["failure_code"]) == ("failed", "payer_limit_exceeded"), done
    within = await _pay(client, key, payer=payer, payee=payee, amount=1_000_000)
    await _settle(api.config)
    assert (await _payment(client, key, within["id"]))["status"] == "succeeded"
    merchant = {"kind": "merchant", "msisdn": _fresh_number(), "district": "Swat", "category": "kiryana"}
    refused = await client.post("/v1/accounts", json={**merchant, "tier": "level_0"}, headers=_auth(key))
    _assert_problem(refused, 422, "parameter_unexpected", "tier")


def _fresh_number() -> str:
    return "0345" + f"{uuid.uuid4().int % 10**7:07d}"
