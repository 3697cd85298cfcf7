"""Idempotency-Key on every POST, through a real uvicorn server on the test stack (issue 9, item 5):
a replay answers the first response again with `Idempotent-Replayed: true` and publishes nothing again;
the key with another body is 409; concurrent requests with one key make one payment; 4xx answers are
kept; keys are per tenant."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Final

import asyncpg
import httpx
import pytest

from infra.settings import Settings
from tests.integration.test_api import (
    HTTP_TIMEOUT_S,
    RunningApi,
    _assert_problem,
    _auth,
    _tenant_key,
    running_api,
)
from tests.integration.test_api_payments import TOP_UP, _available, _msisdn, _open, _settle, _top_up

AMOUNT: Final = 25_000
CONCURRENT: Final = 5
REPLAYED: Final = "Idempotent-Replayed"


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-idem-state"), "api_idem") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


def _with_key(key: str, idempotency_key: str | bytes) -> dict[str, str | bytes]:
    return {**_auth(key), "Idempotency-Key": idempotency_key}


async def _payments_from(config: Settings, payer: str) -> int:
    connection = await asyncpg.connect(config.dsn)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM api_payments WHERE payer = $1", payer)
        return count
    finally:
        await connection.close()


async def test_a_replay_answers_the_first_response_and_pays_once(api: RunningApi, client: httpx.AsyncClient) -> None:
    """The same key and body (formatted differently) → the same 202 and body with Idempotent-Replayed;
    one payment row, and the payer is debited once after the ledger settles."""
    key = await _tenant_key(api.config, "idem replay")
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    idem = f"pay-{uuid.uuid4()}"
    first = await client.post(
        "/v1/payments", json={"payer": payer, "payee": payee, "amount": AMOUNT}, headers=_with_key(key, idem)
    )
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    reordered = json.dumps({"amount": AMOUNT, "payee": payee, "payer": payer}, indent=2)
    headers = {**_with_key(key, idem), "Content-Type": "application/json"}
    second = await client.post("/v1/payments", content=reordered, headers=headers)
    assert second.status_code == 202, second.text
    assert second.headers[REPLAYED] == "true"
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.content == first.content
    assert await _payments_from(api.config, payer) == 1
    await _settle(api.config)
    assert await _available(client, key, payer) == TOP_UP - AMOUNT
    third = await client.post(
        "/v1/payments", json={"payer": payer, "payee": payee, "amount": AMOUNT}, headers=_with_key(key, idem)
    )
    assert third.headers[REPLAYED] == "true" and third.json() == first.json()  # the first answer, not today's state
    assert await _payments_from(api.config, payer) == 1


async def test_the_key_with_another_body_or_path_is_409_reused(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Another amount, or another endpoint, under a used key → 409 idempotency_key_reused; nothing made."""
    key = await _tenant_key(api.config, "idem reuse")
    payer, payee = await _open(client, key), await _open(client, key)
    idem = f"pay-{uuid.uuid4()}"
    first = await client.post(
        "/v1/payments", json={"payer": payer, "payee": payee, "amount": AMOUNT}, headers=_with_key(key, idem)
    )
    assert first.status_code == 202, first.text
    other = await client.post(
        "/v1/payments", json={"payer": payer, "payee": payee, "amount": AMOUNT + 1}, headers=_with_key(key, idem)
    )
    _assert_problem(other, 409, "idempotency_key_reused", "Idempotency-Key")
    elsewhere = await client.post(
        "/v1/test_helpers/top_ups", json={"account": payer, "amount": AMOUNT}, headers=_with_key(key, idem)
    )
    _assert_problem(elsewhere, 409, "idempotency_key_reused", "Idempotency-Key")
    assert await _payments_from(api.config, payer) == 1


async def test_an_invalid_key_is_400(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Longer than 255 characters, empty or not printable ASCII → 400 idempotency_key_invalid; 255 is fine."""
    key = await _tenant_key(api.config, "idem invalid")
    for bad in ("k" * 256, "", "caf\xe9".encode("latin-1"), b"tab\there"):
        response = await client.post("/v1/accounts", json={"kind": "citizen_wallet"}, headers=_with_key(key, bad))
        _assert_problem(response, 400, "idempotency_key_invalid", "Idempotency-Key")
    body = {"kind": "citizen_wallet", "msisdn": _msisdn(), "district": "Peshawar", "gender": "female"}
    response = await client.post("/v1/accounts", json=body, headers=_with_key(key, "k" * 255))
    assert response.status_code == 201, response.text


async def test_a_4xx_is_kept_and_answered_again(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A 404 (unknown payer) under a key is answered again as the same 404 problem, replayed."""
    key = await _tenant_key(api.config, "idem 4xx")
    payee = await _open(client, key)
    body = {"payer": "acc_" + "0" * 32, "payee": payee, "amount": AMOUNT}
    idem = f"pay-{uuid.uuid4()}"
    first = await client.post("/v1/payments", json=body, headers=_with_key(key, idem))
    _assert_problem(first, 404, "not_found", "payer")
    second = await client.post("/v1/payments", json=body, headers=_with_key(key, idem))
    _assert_problem(second, 404, "not_found", "payer")
    assert second.headers[REPLAYED] == "true" and second.content == first.content


async def test_concurrent_requests_with_one_key_make_one_payment(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Five simultaneous POSTs with one key → exactly one fresh 202; the others are 409 in progress or
    replays of the same body; one payment row."""
    key = await _tenant_key(api.config, "idem race")
    payer, payee = await _open(client, key), await _open(client, key)
    idem = f"pay-{uuid.uuid4()}"
    body = {"payer": payer, "payee": payee, "amount": AMOUNT}
    responses = await asyncio.gather(
        *(client.post("/v1/payments", json=body, headers=_with_key(key, idem)) for _ in range(CONCURRENT))
    )
    fresh = [r for r in responses if r.status_code == 202 and REPLAYED not in r.headers]
    assert len(fresh) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response is fresh[0]:
            continue
        if response.status_code == 409:
            _assert_problem(response, 409, "idempotency_key_in_progress", "Idempotency-Key")
        else:
            assert response.status_code == 202 and response.headers[REPLAYED] == "true", response.text
            assert response.content == fresh[0].content
    assert await _payments_from(api.config, payer) == 1


async def test_keys_are_per_tenant(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Two tenants using the same key with different bodies each get their own fresh answer."""
    first_key, second_key = await _tenant_key(api.config, "idem a"), await _tenant_key(api.config, "idem b")
    idem = f"shared-{uuid.uuid4()}"
    for key in (first_key, second_key):
        payer, payee = await _open(client, key), await _open(client, key)
        response = await client.post(
            "/v1/payments", json={"payer": payer, "payee": payee, "amount": AMOUNT}, headers=_with_key(key, idem)
        )
        assert response.status_code == 202 and REPLAYED not in response.headers, response.text
        assert await _payments_from(api.config, payer) == 1
