"""Issue 10, items 3, 5 and 6 on the real stack: the events the API records itself (payment requests,
accounts that opened, a payment it timed out) reach a real HTTP receiver once each; a resend keeps the
webhook-id; a replay after an outage backfills; `kpsandbox trigger` runs a flow end to end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from infra.settings import Settings, with_overrides
from schemas.api.magic import NO_ANSWER_TIMEOUT_S, PAYEE_NO_ANSWER
from tests.integration.test_api import HTTP_TIMEOUT_S, REPO, RunningApi, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import _open, _pay, _settle, _top_up
from tests.integration.test_ledger_support import settle_env
from tests.integration.test_webhooks import Receiver, dispatching, serving, wait_for

NEW_TYPES: Final = [
    "payment_request.created",
    "payment_request.approved",
    "payment_request.declined",
    "payment_request.expired",
    "account.opened",
    "payment.failed",
]
CLI_TIMEOUT_S: Final = 120.0
STOP_S: Final = 15.0


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's state folder: the dispatcher needs its deployment key to open the secrets."""
    return tmp_path_factory.mktemp("api-webhook-resend-state")


@pytest.fixture(scope="module")
def api(settings: Settings, state: Path) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, state, "whresend") as running:
        yield running


@pytest.fixture
def config(api: RunningApi, state: Path) -> Settings:
    """The dispatcher's settings: the API's database and key, and a one-second retry schedule."""
    return with_overrides(api.config, state_dir=state, webhook_retry_schedule="1")


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _endpoint(client: httpx.AsyncClient, key: str, url: str, events: list[str]) -> dict[str, Any]:
    response = await client.post("/v1/webhook_endpoints", json={"url": url, "events": events}, headers=_auth(key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _post(client: httpx.AsyncClient, key: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = await client.post(path, json=body, headers=_auth(key))
    assert response.status_code == status, (path, response.text)
    return response.json()


async def _db_count(config: Settings, sql: str, *args: Any) -> int:
    connection = await asyncpg.connect(config.dsn)
    try:
        return int(await connection.fetchval(sql, *args))
    finally:
        await connection.close()


async def test_the_new_event_types_reach_a_real_receiver_once_each(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """Accounts opening, a request approved, one declined, one expired (by the scheduler's sweep, then
    read: no second event), and a payment the API timed out: each event POSTed once, signed, with its data."""
    key = await _tenant_key(api.config, "new events")
    async with serving(Receiver(statuses=[200])) as receiver:
        endpoint = await _endpoint(client, key, receiver.url, NEW_TYPES)
        payer, payee = await _open(client, key), await _open(client, key)
        await _top_up(client, key, payer)
        await _settle(api.config)  # the ledger opens both accounts: the scheduler announces them
        request = {"payer": payer, "payee": payee, "amount": 1_000}
        approved = await _post(client, key, "/v1/payment_requests", request, 201)
        declined = await _post(client, key, "/v1/payment_requests", request, 201)
        expiring = await _post(client, key, "/v1/payment_requests", {**request, "expires_in": 1}, 201)
        await _post(client, key, f"/v1/payment_requests/{approved['id']}/approve")
        await _post(client, key, f"/v1/payment_requests/{declined['id']}/decline")
        timed_out = await _pay(client, key, payer=payer, payee_alias=PAYEE_NO_ANSWER, amount=500)
        expected = {
            ("account.opened", payer),
            ("account.opened", payee),
            ("payment_request.created", approved["id"]),
            ("payment_request.created", declined["id"]),
            ("payment_request.created", expiring["id"]),
            ("payment_request.approved", approved["id"]),
            ("payment_request.declined", declined["id"]),
            ("payment_request.expired", expiring["id"]),
            ("payment.failed", timed_out["id"]),
        }
        webhook = Webhook(endpoint["secret"])

        def seen() -> list[tuple[str, str]]:
            return [
                (event["type"], event["data"]["id"])
                for event in (webhook.verify(body, headers) for body, headers, _ in receiver.received)
            ]

        async with dispatching(config):

            async def all_seen() -> bool:
                return expected <= set(seen())

            await wait_for(all_seen, "every new event type", timeout_s=NO_ANSWER_TIMEOUT_S + 30)
            read = await client.get(f"/v1/payment_requests/{expiring['id']}", headers=_auth(key))
            assert read.json()["status"] == "expired", read.text  # the sweep wrote it; this read adds nothing
            await asyncio.sleep(1.0)  # anything doubled would be delivered by now
    assert Counter(seen()) == Counter(expected), seen()
    events = {(e["type"], e["data"]["id"]): e["data"] for e in (webhook.verify(b, h) for b, h, _ in receiver.received)}
    assert events[("payment_request.approved", approved["id"])]["payment"].startswith("pay_")
    assert events[("payment.failed", timed_out["id"])]["failure_code"] == "timed_out"
    assert events[("account.opened", payer)]["status"] == "open"
    assert events[("payment_request.expired", expiring["id"])]["status"] == "expired"
    expired_events = "SELECT count(*) FROM api_events WHERE object_id = $1 AND type = 'payment_request.expired'"
    assert await _db_count(api.config, expired_events, expiring["id"]) == 1


async def test_a_magic_declined_request_announces_created_and_declined(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """The magic payer number declines at once: both events are recorded with the request."""
    key = await _tenant_key(api.config, "magic decline")
    payee = await _open(client, key)
    body = {"payee": payee, "payer_alias": "03000000009", "amount": 1_000}
    request = await _post(client, key, "/v1/payment_requests", body, 201)
    listed = (await client.get("/v1/events", headers=_auth(key))).json()["data"]
    assert {e["type"] for e in listed if e["data"]["id"] == request["id"]} == {
        "payment_request.created",
        "payment_request.declined",
    }


async def _one_payment_event(client: httpx.AsyncClient, api: RunningApi, key: str) -> dict[str, Any]:
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    await _pay(client, key, payer=payer, payee=payee, amount=1_000)
    await _settle(api.config)
    listed = await client.get("/v1/events", params={"type": "payment.succeeded"}, headers=_auth(key))
    [event] = listed.json()["data"]
    return dict(event)


async def test_a_resend_is_a_new_delivery_with_the_same_webhook_id(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """Delivered once, resent: a second POST with the same webhook-id and body; the log marks it `resend`.
    Another tenant's event is 404; a disabled endpoint or none subscribed is 409."""
    key = await _tenant_key(api.config, "resend shop")
    async with serving(Receiver(statuses=[200])) as receiver:
        endpoint = await _endpoint(client, key, receiver.url, ["payment.succeeded"])
        event = await _one_payment_event(client, api, key)
        async with dispatching(config):

            async def delivered(count: int) -> bool:
                return len(receiver.received) >= count

            await wait_for(lambda: delivered(1), "the first delivery")
            queued = await _post(client, key, f"/v1/events/{event['id']}/resend", None, 202)
            assert [(d["origin"], d["status"]) for d in queued["data"]] == [("resend", "pending")], queued
            await wait_for(lambda: delivered(2), "the resend")
            await asyncio.sleep(0.5)  # the attempt's record commits
    first, second = receiver.received[:2]
    assert first[1]["webhook-id"] == second[1]["webhook-id"] == event["id"]
    assert first[0] == second[0]
    Webhook(endpoint["secret"]).verify(second[0], second[1])
    log = (await client.get(f"/v1/events/{event['id']}/deliveries", headers=_auth(key))).json()["data"]
    assert sorted((d["origin"], d["status"]) for d in log) == [("event", "delivered"), ("resend", "delivered")]

    stranger = await _tenant_key(api.config, "resend stranger")
    foreign = await client.post(f"/v1/events/{event['id']}/resend", headers=_auth(stranger))
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found", foreign.text
    await _post(client, key, f"/v1/webhook_endpoints/{endpoint['id']}", {"disabled": True})
    disabled = await client.post(
        f"/v1/events/{event['id']}/resend", json={"webhook_endpoint": endpoint["id"]}, headers=_auth(key)
    )
    assert disabled.status_code == 409 and disabled.json()["code"] == "webhook_endpoint_disabled", disabled.text
    nowhere = await client.post(f"/v1/events/{event['id']}/resend", headers=_auth(key))
    assert nowhere.status_code == 409 and nowhere.json()["code"] == "no_webhook_endpoints", nowhere.text


async def test_a_replay_after_an_outage_backfills_what_was_missed(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """Events made while the endpoint was disabled get no delivery; enabled again, a replay since the
    outage queues each once (`replay`), oldest first, and `starting_after` continues after one."""
    key = await _tenant_key(api.config, "replay shop")
    async with serving(Receiver(statuses=[200])) as receiver:
        endpoint = await _endpoint(client, key, receiver.url, ["payment.succeeded"])
        await _post(client, key, f"/v1/webhook_endpoints/{endpoint['id']}", {"disabled": True})
        outage = datetime.now(UTC).isoformat()
        payer, payee = await _open(client, key), await _open(client, key)
        await _top_up(client, key, payer)
        await _settle(api.config)
        for _ in range(3):
            await _pay(client, key, payer=payer, payee=payee, amount=1_000)
        await _settle(api.config)
        listed = await client.get("/v1/events", params={"type": "payment.succeeded"}, headers=_auth(key))
        missed = [e["id"] for e in listed.json()["data"]][::-1]  # oldest first
        await _post(client, key, f"/v1/webhook_endpoints/{endpoint['id']}", {"disabled": False})
        path = f"/v1/webhook_endpoints/{endpoint['id']}/replay"
        replay = await _post(client, key, path, {"since": outage}, 202)
        assert replay["deliveries_created"] == 3 and replay["has_more"] is False, replay
        async with dispatching(config):

            async def three() -> bool:
                return len(receiver.received) >= 3

            await wait_for(three, "the backfill")
            await asyncio.sleep(0.5)
    assert sorted(headers["webhook-id"] for _, headers, _ in receiver.received) == sorted(missed)
    assert len(missed) == 3 and replay["last_event"] == missed[-1]
    log = (await client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=_auth(key))).json()
    assert [d["event"] for d in log["data"]][::-1] == missed, log  # queued oldest first
    assert {(d["origin"], d["status"]) for d in log["data"]} == {("replay", "delivered")}, log
    more = await _post(client, key, path, {"since": outage, "starting_after": missed[0]}, 202)
    assert more["deliveries_created"] == 2 and more["last_event"] == missed[-1], more


@contextlib.asynccontextmanager
async def whole_sandbox(config: Settings) -> AsyncIterator[None]:
    """The ledger and the views consumer run as their own processes until the block ends, as `serve`
    runs them (SIGTERM stops each; a process that outlives STOP_S is killed)."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            cwd=REPO,
            env=settle_env(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for module in ("consumers.ledger", "consumers.views")
    ]
    try:
        yield
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_S)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_trigger_runs_a_flow_end_to_end_through_the_cli(api: RunningApi, client: httpx.AsyncClient) -> None:
    """`kpsandbox trigger payment_request.approved --override amount=5000` against the running sandbox:
    exit 0, the objects and the events printed, and the request really approved for 5000 paisa."""
    key = await _tenant_key(api.config, "trigger shop")
    env = dict(os.environ, KPSANDBOX_API_KEY=key, KPSANDBOX_API_URL=api.url, COLUMNS="200")
    async with whole_sandbox(api.config):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kpsandbox", "trigger", "payment_request.approved", "--override", "amount=5000",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    text = output.decode()
    assert process.returncode == 0, text
    for expected in ("payment_request.created", "payment_request.approved", "payment.succeeded", "5000"):
        assert expected in text, (expected, text)
    requests = [e for e in (await client.get("/v1/events", headers=_auth(key))).json()["data"]]
    approved = [e["data"] for e in requests if e["type"] == "payment_request.approved"]
    assert len(approved) == 1 and approved[0]["amount"] == 5_000 and approved[0]["status"] == "approved", approved
