"""Request-to-pay through a real uvicorn server (`python -m producers.api`) on the test stack's Kafka and
PostgreSQL: approve makes a payment the ledger settles, decline, lazy expiry, the magic payer that
declines, answering twice, tenant isolation and bad input (issue 9, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import asyncpg
import httpx
import pytest

from infra.settings import Settings
from producers.api.payment_requests import APPROVAL_LEASE_S
from schemas.api.magic import PAYER_DECLINES_REQUEST
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _assert_problem, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import TOP_UP, _available, _msisdn, _open, _payment, _settle, _top_up

PATH: Final = "/v1/payment_requests"
EXPIRY_SLACK_S: Final = 2.0  # past a 1 s expiry by this much: the scheduler sweeps every 0.2 s, under load later


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-prq-state"), "api_prq") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _ask(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post(PATH, json=body, headers=_auth(key))
    assert response.status_code == 201, response.text
    asked: dict[str, Any] = response.json()
    assert asked["id"].startswith("pr_") and len(asked["id"]) == 3 + 32, asked
    return asked


async def _stored(config: Settings, request_id: str) -> asyncpg.Record:
    connection = await asyncpg.connect(config.dsn)
    try:
        row = await connection.fetchrow("SELECT * FROM api_payment_requests WHERE id = $1", request_id)
    finally:
        await connection.close()
    assert row is not None
    return row


async def test_an_approved_request_makes_a_payment_that_settles_and_moves_the_money(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """pending → approve → approved with a p2p payment payer → payee; it succeeds once settled, both
    balances move; approving again is 409 payment_request_not_pending and makes no second payment."""
    key = await _tenant_key(api.config, "biller")
    number = _msisdn()
    payer, payee = await _open(client, key, number), await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    asked = await _ask(client, key, payee=payee, payer_alias=number, amount=25_000, reference="INV-1042")
    assert asked["status"] == "pending" and asked["payer"] == payer, asked
    assert asked["payment"] is None and asked["reference"] == "INV-1042" and number[1:] not in str(asked)

    approved = await client.post(f"{PATH}/{asked['id']}/approve", headers=_auth(key))
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["payment"].startswith("pay_"), body
    payment = await _payment(client, key, body["payment"])
    assert (payment["payer"], payment["payee"], payment["amount"], payment["kind"]) == (payer, payee, 25_000, "p2p")
    await _settle(api.config)
    assert (await _payment(client, key, body["payment"]))["status"] == "succeeded"
    assert await _available(client, key, payer) == TOP_UP - 25_000
    assert await _available(client, key, payee) == 25_000

    again = await client.post(f"{PATH}/{asked['id']}/approve", headers=_auth(key))
    _assert_problem(again, 409, "payment_request_not_pending")
    read = (await client.get(f"{PATH}/{asked['id']}", headers=_auth(key))).json()
    assert read["status"] == "approved" and read["payment"] == body["payment"], read


async def test_concurrent_approvals_make_one_payment(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Five approvals of one request at once: exactly one succeeds, the others are 409."""
    key = await _tenant_key(api.config, "racer")
    payer, payee = await _open(client, key), await _open(client, key)
    asked = await _ask(client, key, payee=payee, payer=payer, amount=1_000)
    answers = await asyncio.gather(
        *(client.post(f"{PATH}/{asked['id']}/approve", headers=_auth(key)) for _ in range(5))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 409, 409, 409, 409], [a.text for a in answers]
    connection = await asyncpg.connect(api.config.dsn)
    try:
        made = await connection.fetchval("SELECT count(*) FROM api_payments WHERE payer = $1", payer)
    finally:
        await connection.close()
    assert made == 1


async def test_a_declined_request_makes_no_payment(api: RunningApi, client: httpx.AsyncClient) -> None:
    """decline → declined, no payment; approving or declining it afterwards is 409."""
    key = await _tenant_key(api.config, "decliner")
    payer, payee = await _open(client, key), await _open(client, key)
    asked = await _ask(client, key, payee=payee, payer=payer, amount=5_000)
    declined = await client.post(f"{PATH}/{asked['id']}/decline", headers=_auth(key))
    assert declined.status_code == 200 and declined.json()["status"] == "declined", declined.text
    assert declined.json()["payment"] is None
    for verb in ("approve", "decline"):
        _assert_problem(
            await client.post(f"{PATH}/{asked['id']}/{verb}", headers=_auth(key)), 409, "payment_request_not_pending"
        )
    assert (await _stored(api.config, asked["id"]))["payment_id"] is None


async def test_a_request_past_its_expiry_reads_expired_and_cannot_be_answered(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """expires_in=1: after it, the API's scheduler has written it down as expired without any read, GET
    answers expired, approve and decline are 409 payment_request_expired."""
    key = await _tenant_key(api.config, "slow payer")
    payer, payee = await _open(client, key), await _open(client, key)
    asked = await _ask(client, key, payee=payee, payer=payer, amount=5_000, expires_in=1)
    assert asked["status"] == "pending"
    await asyncio.sleep(1 + EXPIRY_SLACK_S)
    assert (await _stored(api.config, asked["id"]))["status"] == "expired"  # the scheduler's sweep, unread
    read = await client.get(f"{PATH}/{asked['id']}", headers=_auth(key))
    assert read.status_code == 200 and read.json()["status"] == "expired", read.text
    assert (await _stored(api.config, asked["id"]))["status"] == "expired"
    for verb in ("approve", "decline"):
        _assert_problem(
            await client.post(f"{PATH}/{asked['id']}/{verb}", headers=_auth(key)), 409, "payment_request_expired"
        )

    unread = await _ask(client, key, payee=payee, payer=payer, amount=5_000, expires_in=1)
    await asyncio.sleep(1 + EXPIRY_SLACK_S)
    approve = await client.post(f"{PATH}/{unread['id']}/approve", headers=_auth(key))
    _assert_problem(approve, 409, "payment_request_expired")  # acted on without a read first
    assert (await _stored(api.config, unread["id"]))["status"] == "expired"


async def test_the_magic_payer_number_declines_at_once_and_is_not_stored(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """payer_alias = PAYER_DECLINES_REQUEST (in any form) → declined at once, payer null, though no account
    holds that number; the row records only that it was the magic decline, never the number."""
    key = await _tenant_key(api.config, "magic biller")
    payee = await _open(client, key)
    for form in (PAYER_DECLINES_REQUEST, "+92" + PAYER_DECLINES_REQUEST[1:]):
        asked = await _ask(client, key, payee=payee, payer_alias=form, amount=2_000)
        assert asked["status"] == "declined" and asked["payer"] is None and asked["payment"] is None, asked
        row = await _stored(api.config, asked["id"])
        assert row["magic_decline"] is True and row["payer"] is None
        assert PAYER_DECLINES_REQUEST[1:] not in str(dict(row))
        _assert_problem(
            await client.post(f"{PATH}/{asked['id']}/approve", headers=_auth(key)), 409, "payment_request_not_pending"
        )


async def test_another_tenants_request_and_accounts_are_404(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A tenant cannot read, approve or decline another's request, nor ask with another's accounts."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    number = _msisdn()
    payer, payee = await _open(client, owner, number), await _open(client, owner)
    own = await _open(client, stranger)
    asked = await _ask(client, owner, payee=payee, payer=payer, amount=100)
    path = f"{PATH}/{asked['id']}"
    headers = _auth(stranger)
    _assert_problem(await client.get(path, headers=headers), 404, "not_found", "payment_request_id")
    for verb in ("approve", "decline"):
        _assert_problem(await client.post(f"{path}/{verb}", headers=headers), 404, "not_found", "payment_request_id")
    assert (await client.get(path, headers=_auth(owner))).json()["status"] == "pending"
    for body, param in (
        ({"payee": payee, "payer": own}, "payee"),
        ({"payee": own, "payer": payer}, "payer"),
        ({"payee": own, "payer_alias": number}, "payer_alias"),
    ):
        _assert_problem(await client.post(PATH, json={**body, "amount": 1}, headers=headers), 404, "not_found", param)


async def test_bad_payment_requests_are_4xx_problems(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Wrong amounts, payer and alias both or neither, the same account twice, a bad alias, an expiry out
    of range, a long reference, an unknown field: each a 4xx problem naming its parameter, nothing stored."""
    key = await _tenant_key(api.config, "careless biller")
    payer, payee = await _open(client, key), await _open(client, key)

    async def ask(**body: Any) -> httpx.Response:
        return await client.post(PATH, json={"payee": payee, "payer": payer, **body}, headers=_auth(key))

    for amount in (250.0, "250", 0, -5, None):
        _assert_problem(await ask(amount=amount), 422, "invalid_parameter", "amount")
    _assert_problem(await ask(), 422, "parameter_missing", "amount")
    for expires_in in (0, 7 * 86_400 + 1, 1.5, "60"):
        _assert_problem(await ask(amount=1, expires_in=expires_in), 422, "invalid_parameter", "expires_in")
    _assert_problem(await ask(amount=1, reference="x" * 65), 422, "invalid_parameter", "reference")
    _assert_problem(await ask(amount=1, payer_alias="03001234567"), 422, "parameter_unexpected", "payer_alias")
    _assert_problem(await ask(amount=1, note="hi"), 422, "parameter_unexpected", "note")
    neither = await client.post(PATH, json={"payee": payee, "amount": 1}, headers=_auth(key))
    _assert_problem(neither, 422, "parameter_missing", "payer")
    bad_alias = await client.post(PATH, json={"payee": payee, "payer_alias": "12345", "amount": 1}, headers=_auth(key))
    _assert_problem(bad_alias, 422, "invalid_parameter", "payer_alias")
    same = await client.post(PATH, json={"payee": payee, "payer": payee, "amount": 1}, headers=_auth(key))
    _assert_problem(same, 400, "accounts_must_be_different", "payer")
    _assert_problem(await client.post(PATH, json=[1], headers=_auth(key)), 400, "invalid_request")
    connection = await asyncpg.connect(api.config.dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM api_payment_requests WHERE payee = $1", payee) == 0
    finally:
        await connection.close()


async def test_an_approval_with_an_idempotency_key_is_answered_again_without_a_second_payment(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """The same Idempotency-Key on approve answers the first response again (Idempotent-Replayed) instead
    of a 409; on create it answers the same request id."""
    key = await _tenant_key(api.config, "retrier")
    payer, payee = await _open(client, key), await _open(client, key)
    headers = {**_auth(key), "Idempotency-Key": "ask-1"}
    first = await client.post(PATH, json={"payee": payee, "payer": payer, "amount": 700}, headers=headers)
    second = await client.post(PATH, json={"payee": payee, "payer": payer, "amount": 700}, headers=headers)
    assert first.status_code == second.status_code == 201 and first.json() == second.json(), second.text
    assert second.headers["idempotent-replayed"] == "true"
    approve_headers = {**_auth(key), "Idempotency-Key": "approve-1"}
    path = f"{PATH}/{first.json()['id']}/approve"
    once, twice = await client.post(path, headers=approve_headers), await client.post(path, headers=approve_headers)
    assert once.status_code == twice.status_code == 200 and once.json() == twice.json(), twice.text
    assert twice.headers["idempotent-replayed"] == "true"


async def test_an_interrupted_approval_is_pending_again_after_its_lease(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """An approval whose process died before its payment was stored (approved, no payment, claimed
    longer than APPROVAL_LEASE_S ago) reads `pending` again and can be approved, making one payment."""
    key = await _tenant_key(api.config, "interrupted")
    payer, payee = await _open(client, key), await _open(client, key)
    asked = await _ask(client, key, payee=payee, payer=payer, amount=5_000)
    connection = await asyncpg.connect(api.config.dsn)
    try:  # what a claim left behind by a dead process looks like
        await connection.execute(
            "UPDATE api_payment_requests SET status = 'approved', updated_at = now() - make_interval(secs => $2)"
            " WHERE id = $1",
            asked["id"],
            APPROVAL_LEASE_S + 1,
        )
    finally:
        await connection.close()
    read = (await client.get(f"{PATH}/{asked['id']}", headers=_auth(key))).json()
    assert (read["status"], read["payment"]) == ("pending", None), read
    approved = await client.post(f"{PATH}/{asked['id']}/approve", headers=_auth(key))
    assert approved.status_code == 200 and approved.json()["payment"].startswith("pay_"), approved.text
    stored = await _stored(api.config, asked["id"])
    assert stored["payment_id"] == approved.json()["payment"]


async def test_a_fresh_claim_is_not_released(api: RunningApi, client: httpx.AsyncClient) -> None:
    """An approval claimed moments ago without a payment yet (one in flight) stays `approved`."""
    key = await _tenant_key(api.config, "in flight")
    payer, payee = await _open(client, key), await _open(client, key)
    asked = await _ask(client, key, payee=payee, payer=payer, amount=5_000)
    connection = await asyncpg.connect(api.config.dsn)
    try:
        await connection.execute("UPDATE api_payment_requests SET status = 'approved' WHERE id = $1", asked["id"])
    finally:
        await connection.close()
    read = (await client.get(f"{PATH}/{asked['id']}", headers=_auth(key))).json()
    assert (read["status"], read["payment"]) == ("approved", None), read
