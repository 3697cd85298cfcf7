"""Webhook delivery end to end (issue 10, items 3–5): a real API process settles payments through the ledger
and the views consumer, which records events and deliveries; the dispatcher (in-process) POSTs them to
real HTTP receivers (uvicorn, in-process). Retries keep the webhook-id and verify with the reference
`standardwebhooks` library, a hanging receiver does not hold up another endpoint, 410 disables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook

from consumers.views.consumer import run_until_idle
from consumers.webhooks import dispatcher as dispatcher_module
from consumers.webhooks import lanes as lanes_module
from consumers.webhooks.dispatcher import Dispatcher
from consumers.webhooks.metrics import WebhookMetrics, read_backlog
from consumers.webhooks.retries import Decision
from consumers.webhooks.store import DeliveryStore, Finished
from infra.local.procs import port_accepts
from infra.settings import Settings, settings_env, with_overrides
from infra.webhook_events import NewEvent, record_event, record_events
from schemas.webhooks import WebhookEventType
from tests.conftest import REPO_ROOT
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import _open, _pay, _settle, _top_up
from tests.integration.test_ledger_support import free_port

WAIT_S: Final = 30.0  # the longest any test waits for deliveries
SERVER_START_S: Final = 10.0
HANG_S: Final = 60.0  # a hanging receiver's sleep; the dispatcher cuts it off first


@dataclass
class Receiver:
    """An HTTP receiver on a free port: answers `statuses` in turn (then the last one), or hangs."""

    statuses: list[int]
    hang: bool = False
    received: list[tuple[bytes, dict[str, str], float]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        self.received.append((body, headers, time.monotonic()))
        if self.hang:
            await asyncio.sleep(HANG_S)
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"answered {status}".encode()})


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Runs the receiver until the block ends."""
    config = uvicorn.Config(receiver, host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:
        assert time.monotonic() < deadline and not task.done(), "the test receiver did not start"
        await asyncio.sleep(0.05)
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, SERVER_START_S)


@contextlib.asynccontextmanager
async def dispatching(config: Settings) -> AsyncIterator[Dispatcher]:
    """The dispatcher runs (in this event loop) until the block ends."""
    dispatcher = Dispatcher(config)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop=stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, dispatcher_module.STOP_TIMEOUT_S + 5)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S) -> None:
    """Polls `check` until it holds, failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's state folder: the dispatcher needs its deployment key to open the secrets."""
    return tmp_path_factory.mktemp("api-webhooks-state")


@pytest.fixture(scope="module")
def api(settings: Settings, state: Path) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, state, "webhooks") as running:
        yield running


@pytest.fixture
def config(api: RunningApi, state: Path) -> Settings:
    """The dispatcher's settings: the API's database and key, and a one-second retry schedule."""
    return with_overrides(api.config, state_dir=state, webhook_retry_schedule="1,1")


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _endpoint(client: httpx.AsyncClient, key: str, url: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhook_endpoints", json={"url": url, "events": ["payment.succeeded"]}, headers=_auth(key)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _payments(client: httpx.AsyncClient, api: RunningApi, key: str, count: int) -> list[str]:
    """`count` p2p payments of one tenant, settled and applied (so their events are recorded)."""
    payer, payee = await _open(client, key), await _open(client, key)
    await _top_up(client, key, payer)
    await _settle(api.config)
    ids = [(await _pay(client, key, payer=payer, payee=payee, amount=1_000))["id"] for _ in range(count)]
    await _settle(api.config)
    return ids


async def _count_events(config: Settings) -> int:
    connection = await asyncpg.connect(config.dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM api_events"))
    finally:
        await connection.close()


async def test_a_receiver_failing_twice_gets_one_event_three_times_with_one_webhook_id(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """500, 500, 200 with a 1,1 schedule: three POSTs of the same event and webhook-id, each verified by
    the reference library; the event is listed, and the delivery log shows the three attempts."""
    key = await _tenant_key(api.config, "retry shop")
    async with serving(Receiver(statuses=[500, 500, 200])) as receiver:
        endpoint = await _endpoint(client, key, receiver.url)
        [payment_id] = await _payments(client, api, key, 1)
        async with dispatching(config):

            async def three() -> bool:
                return len(receiver.received) >= 3

            await wait_for(three, "three attempts")
            await asyncio.sleep(0.5)  # the third attempt's record commits
    assert len(receiver.received) == 3
    webhook = Webhook(endpoint["secret"])
    events = [webhook.verify(body, headers) for body, headers, _ in receiver.received]
    assert {headers["webhook-id"] for _, headers, _ in receiver.received} == {events[0]["id"]}
    assert all(event == events[0] for event in events)
    event = events[0]
    assert event["type"] == "payment.succeeded" and event["data"]["id"] == payment_id
    assert event["data"]["status"] == "succeeded" and event["data"]["amount_captured"] == 1_000

    read = await client.get(f"/v1/events/{event['id']}", headers=_auth(key))
    assert read.status_code == 200 and read.json() == event, read.text
    listed = await client.get("/v1/events", params={"type": "payment.succeeded"}, headers=_auth(key))
    assert [e["id"] for e in listed.json()["data"]] == [event["id"]], listed.text
    log = await client.get(f"/v1/events/{event['id']}/deliveries", headers=_auth(key))
    [delivery] = log.json()["data"]
    assert delivery["status"] == "delivered" and delivery["next_attempt_at"] is None, delivery
    assert [a["response_status"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    assert delivery["attempts"][0]["response_head"] == "answered 500"
    by_endpoint = await client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=_auth(key))
    assert by_endpoint.json()["data"] == [delivery]


async def test_an_outcome_applied_again_records_no_second_event(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A second views group re-reads every outcome: the changes are refused as stale, so no event repeats."""
    key = await _tenant_key(api.config, "replay shop")
    await _payments(client, api, key, 1)
    before = await _count_events(api.config)
    assert before >= 2  # at least this tenant's top_up.succeeded and payment.succeeded
    await run_until_idle(api.config, group="kp-api-views-replayed", timeout_s=60)
    assert await _count_events(api.config) == before


async def test_a_hanging_receiver_does_not_delay_another_endpoint(
    api: RunningApi, config: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six events to a receiver that never answers and to a healthy one: the healthy one has all six long
    before the hanging one's first attempt times out; the hanging one holds at most its per-endpoint bound
    (2 here, so that six events can pass it)."""
    monkeypatch.setattr(dispatcher_module, "REQUEST_TIMEOUT_S", 5.0)
    monkeypatch.setattr(dispatcher_module, "PER_ENDPOINT_MAX", 2)
    key = await _tenant_key(api.config, "slow and fast")
    async with (
        serving(Receiver(statuses=[200], hang=True)) as slow,
        serving(Receiver(statuses=[200])) as fast,
    ):
        await _endpoint(client, key, slow.url)
        healthy = await _endpoint(client, key, fast.url)
        await _payments(client, api, key, 6)
        async with dispatching(config):
            started = time.monotonic()

            async def all_fast() -> bool:
                return len(fast.received) >= 6

            await wait_for(all_fast, "six deliveries to the healthy endpoint", timeout_s=4.0)
            elapsed = time.monotonic() - started
            assert 1 <= len(slow.received) <= dispatcher_module.PER_ENDPOINT_MAX  # bounded per endpoint
    assert elapsed < 4.0
    log = await client.get(f"/v1/webhook_endpoints/{healthy['id']}/deliveries", headers=_auth(key))
    assert [d["status"] for d in log.json()["data"]] == ["delivered"] * 6, log.text


async def test_queued_deliveries_wake_the_dispatcher_without_waiting_for_its_poll(
    api: RunningApi, config: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the poll stretched past the test's wait, only the notification of migration 0037 can bring a
    payment made while the dispatcher idles to its endpoint in time."""
    monkeypatch.setattr(lanes_module, "POLL_INTERVAL_S", 10 * WAIT_S)
    key = await _tenant_key(api.config, "woken shop")
    async with serving(Receiver(statuses=[200])) as receiver:
        await _endpoint(client, key, receiver.url)
        async with dispatching(config):
            await asyncio.sleep(1.0)  # its first claims found nothing: every lane now waits
            [payment] = await _payments(client, api, key, 1)

            async def arrived() -> bool:
                return len(receiver.received) >= 1

            await wait_for(arrived, "the payment's delivery", timeout_s=WAIT_S)
    assert payment.encode() in receiver.received[0][0]


async def test_410_gone_disables_the_endpoint_and_fails_the_delivery(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """One 410: the delivery is failed after that one attempt, and the endpoint reads `disabled`."""
    key = await _tenant_key(api.config, "gone shop")
    async with serving(Receiver(statuses=[410])) as receiver:
        endpoint = await _endpoint(client, key, receiver.url)
        await _payments(client, api, key, 1)
        async with dispatching(config):

            async def disabled() -> bool:
                read = await client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=_auth(key))
                return bool(read.json()["status"] == "disabled")

            await wait_for(disabled, "the endpoint to be disabled")
    log = await client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=_auth(key))
    [delivery] = log.json()["data"]
    assert delivery["status"] == "failed" and [a["response_status"] for a in delivery["attempts"]] == [410]
    assert len(receiver.received) == 1


async def test_events_and_logs_of_another_tenant_are_404(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Ids of another tenant's events and endpoints answer 404, as unknown ones do."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    await _payments(client, api, owner, 1)
    [event] = (await client.get("/v1/events", params={"type": "payment.succeeded"}, headers=_auth(owner))).json()[
        "data"
    ]
    for path in (f"/v1/events/{event['id']}", f"/v1/events/{event['id']}/deliveries", "/v1/events/evt_nope"):
        response = await client.get(path, headers=_auth(stranger))
        assert response.status_code == 404 and response.json()["code"] == "not_found", (path, response.text)
    unknown = await client.get("/v1/webhook_endpoints/we_nope/deliveries", headers=_auth(owner))
    assert unknown.status_code == 404


async def test_a_refund_records_refund_succeeded_then_payment_refunded(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A settled refund announces itself and its payment, whose data shows the amount refunded."""
    key = await _tenant_key(api.config, "refund shop")
    [payment_id] = await _payments(client, api, key, 1)
    refund = await client.post("/v1/refunds", json={"payment": payment_id, "amount": 400}, headers=_auth(key))
    assert refund.status_code == 202, refund.text
    await _settle(api.config)
    listed = (await client.get("/v1/events", headers=_auth(key))).json()["data"]
    by_type = {event["type"]: event["data"] for event in listed}
    assert by_type["refund.succeeded"]["id"] == refund.json()["id"], listed
    assert by_type["payment.refunded"]["id"] == payment_id and by_type["payment.refunded"]["amount_refunded"] == 400
    assert {"top_up.succeeded", "payment.succeeded"} <= set(by_type)


async def test_the_dispatcher_metrics_count_attempts_and_read_the_backlog(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """A new due delivery adds one to the backlog query's pending count; dispatched with 500 then 200, it
    is counted as an http_error and a delivered attempt, each timed, and finishes delivered."""
    key = await _tenant_key(api.config, "metrics shop")
    pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=1)
    before, after = WebhookMetrics(), WebhookMetrics()
    try:
        async with serving(Receiver(statuses=[500, 200])) as receiver:
            await _endpoint(client, key, receiver.url)
            await read_backlog(pool, before)
            await _payments(client, api, key, 1)
            await read_backlog(pool, after)
            assert after.pending == before.pending + 1 and after.oldest_due_age_s >= 0
            async with dispatching(config) as dispatcher:

                async def two() -> bool:
                    return len(receiver.received) >= 2

                await wait_for(two, "two attempts")
                await asyncio.sleep(0.5)  # the second attempt's record commits
    finally:
        await pool.close()
    m = dispatcher.metrics
    assert m.attempts["http_error"] >= 1 and m.attempts["delivered"] >= 1 and m.finished["delivered"] >= 1
    assert sum(m.duration_buckets) == sum(m.attempts.values())


async def test_a_claim_leases_its_delivery_until_the_lease_lapses_or_the_attempt_is_recorded(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """A claimed delivery is not claimed again while its lease runs (another dispatcher's attempt is in
    flight); once it lapses (that dispatcher died) it is, with the attempt counted again; once an attempt
    is recorded the lease is over and a delivered row is never claimed again."""
    key = await _tenant_key(api.config, "lease shop")
    endpoint = await _endpoint(client, key, "http://127.0.0.1:9/never-called")
    await _payments(client, api, key, 1)
    pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=2)
    try:
        store = DeliveryStore(pool)

        async def claim(lease_s: float) -> list[dict[str, Any]]:
            rows = await store.claim(in_flight={}, per_endpoint_max=16, batch_max=256, lease_s=lease_s)
            return [row for row in rows if row["endpoint_id"] == endpoint["id"]]

        [first] = await claim(lease_s=1.0)
        assert first["attempts"] == 1
        assert await claim(lease_s=1.0) == []  # leased
        await asyncio.sleep(1.5)
        [again] = await claim(lease_s=60.0)  # the lease lapsed
        assert again["id"] == first["id"] and again["attempts"] == 2
        await store.finish_many([Finished(again["id"], endpoint["id"], 2, 200, None, 3, "ok", Decision("delivered"))])
        status, next_attempt_at = await pool.fetchrow(
            "SELECT status, next_attempt_at FROM api_webhook_deliveries WHERE id = $1", first["id"]
        )
        assert (status, next_attempt_at) == ("delivered", None)
        assert await claim(lease_s=60.0) == []
    finally:
        await pool.close()


async def _idle_endpoint(api: RunningApi, client: httpx.AsyncClient, name: str, events: list[str]) -> tuple[str, str]:
    """A new tenant `name` with one endpoint for `events` at a URL nothing answers: (endpoint id, tenant id)."""
    key = await _tenant_key(api.config, name)
    made = await client.post(
        "/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/never-called", "events": events}, headers=_auth(key)
    )
    assert made.status_code == 201, made.text
    db = await asyncpg.connect(api.config.dsn)
    try:
        tenant = await db.fetchval("SELECT tenant_id FROM api_webhook_endpoints WHERE id = $1", made.json()["id"])
    finally:
        await db.close()
    return made.json()["id"], tenant


async def test_an_event_recorded_twice_is_one_event_with_one_delivery_only_for_once_per_object_types(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """The event and its deliveries are one statement: a second `payment_request.expired` of one object
    records nothing (None, no delivery); a second `payment.refunded` is a second event with its delivery."""
    endpoint, tenant = await _idle_endpoint(api, client, "twice shop", ["payment_request.expired", "payment.refunded"])
    db = await asyncpg.connect(config.dsn)
    try:

        async def record(type: WebhookEventType, object_id: str) -> str | None:
            async with db.transaction():
                return await record_event(db, tenant_id=tenant, type=type, object_id=object_id, data={"id": object_id})

        async def deliveries(event_id: str | None) -> int:
            return int(await db.fetchval("SELECT count(*) FROM api_webhook_deliveries WHERE event_id = $1", event_id))

        first = await record("payment_request.expired", "pr_twice")
        assert first is not None and await deliveries(first) == 1
        assert await record("payment_request.expired", "pr_twice") is None
        assert await db.fetchval("SELECT count(*) FROM api_events WHERE object_id = 'pr_twice'") == 1
        refunds = [await record("payment.refunded", "pay_twice") for _ in range(2)]
        assert None not in refunds and refunds[0] != refunds[1]
        assert [await deliveries(event_id) for event_id in refunds] == [1, 1]
        endpoint_rows = "SELECT count(*) FROM api_webhook_deliveries WHERE endpoint_id = $1"
        assert await db.fetchval(endpoint_rows, endpoint) == 3  # none for the refused duplicate
    finally:
        await db.close()


async def test_a_batch_of_events_is_one_statement_with_deliveries_in_the_order_given(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """`record_events` (a views batch): every event but a repeated once-per-object one is recorded, the
    repeat answers None even when its first is earlier in the same batch, and delivery ids follow the
    order the events were given (the dispatcher sends in that order)."""
    endpoint, tenant = await _idle_endpoint(api, client, "batch shop", ["payment.failed", "payment.refunded"])
    db = await asyncpg.connect(config.dsn)
    try:
        given = [NewEvent(tenant, "payment.refunded", f"pay_batch_{n}", {"n": n}) for n in (5, 3, 9)] + [
            NewEvent(tenant, "payment.failed", "pay_batch_f", {"n": 0}),
            NewEvent(tenant, "payment.failed", "pay_batch_f", {"n": 1}),
        ]
        async with db.transaction():
            recorded = await record_events(db, given)
        assert recorded[4] is None and None not in recorded[:4]
        rows = await db.fetch(
            "SELECT e.object_id, e.data->>'n' AS n FROM api_webhook_deliveries AS d"
            " JOIN api_events AS e ON e.id = d.event_id WHERE d.endpoint_id = $1 ORDER BY d.id",
            endpoint,
        )
        assert [(row["object_id"], row["n"]) for row in rows] == [
            ("pay_batch_5", "5"), ("pay_batch_3", "3"), ("pay_batch_9", "9"), ("pay_batch_f", "0")
        ]  # fmt: skip
    finally:
        await db.close()


def _children(pid: int) -> list[int]:
    """The process's children (Linux /proc)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _attempts_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=HTTP_TIMEOUT_S).text
    counted = [line for line in text.splitlines() if line.startswith("kpsandbox_webhook_attempts_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in counted)


@contextlib.asynccontextmanager
async def dispatcher_process(config: Settings, processes: int) -> AsyncIterator[tuple[subprocess.Popen[str], int]]:
    """`python -m consumers.webhooks` with at most `processes` processes, its /metrics on a free port, until the
    block ends (then stopped by SIGTERM if still running)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")}
    env |= settings_env(with_overrides(config, webhook_processes=processes, webhooks_metrics_port=port))
    env["PYTHONPATH"] = str(REPO_ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.webhooks"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not port_accepts(port):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the dispatcher's /metrics did not answer"
            await asyncio.sleep(0.05)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(dispatcher_module.STOP_TIMEOUT_S + 10)
        if process.poll() is None:
            process.kill()


async def _backlog(api: RunningApi, client: httpx.AsyncClient, name: str, url: str, events: int) -> None:
    """A new tenant `name` with one endpoint at `url` and `events` events for it, recorded in one statement
    (as a replay or a receiver back from an outage leaves them)."""
    key = await _tenant_key(api.config, name)
    endpoint = await _endpoint(client, key, url)
    db = await asyncpg.connect(api.config.dsn)
    try:
        tenant = await db.fetchval("SELECT tenant_id FROM api_webhook_endpoints WHERE id = $1", endpoint["id"])
        given = [NewEvent(tenant, "payment.succeeded", f"pay_{name}_{n}", {"n": n}) for n in range(events)]
        async with db.transaction():
            await record_events(db, given)
    finally:
        await db.close()


async def test_a_backlog_sets_the_waiting_worker_process_to_work_and_every_event_arrives_once(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """KPSANDBOX_WEBHOOK_PROCESSES=2: a worker process waits, paused, beside the first; 3,000 events recorded
    before the dispatcher starts (as after an outage) fill every claim and have waited, so it is told to run
    (the log says so); each event arrives once; the /metrics port counts both processes' attempts (the exit
    summary, added up across both, says the same); SIGTERM stops both, exit 0."""
    async with serving(Receiver(statuses=[200])) as receiver:
        await _backlog(api, client, "backlog shop", receiver.url, 3_000)
        async with dispatcher_process(config, 2) as (process, port):
            worker = await _worker_of(process)

            async def all_arrived() -> bool:
                return len(receiver.received) >= 3_000

            await wait_for(all_arrived, "3,000 deliveries", timeout_s=2 * WAIT_S)
            await asyncio.sleep(2.5)  # the worker's next report (every second) reaches process 0
            scraped = _attempts_total(port)
            process.terminate()
            out, err = process.communicate(timeout=dispatcher_module.STOP_TIMEOUT_S + 10)
    assert process.returncode == 0, err
    assert "2 processes deliver" in err  # the backlog set the worker to work
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    ids = [headers["webhook-id"] for _, headers, _ in receiver.received]
    assert len(ids) == len(set(ids)) == 3_000  # once each, by two processes
    summary = re.search(r"webhooks: (\d+) attempts", out)
    assert summary is not None, out
    assert int(summary.group(1)) == scraped >= 3_000  # other tests' leftovers may be attempted too


async def _worker_of(process: subprocess.Popen[str]) -> int:
    """The pid of the dispatcher's one worker process (it starts, paused, with the first)."""
    deadline = time.monotonic() + WAIT_S
    while not _children(process.pid):  # bounded by the deadline
        assert time.monotonic() < deadline and process.poll() is None, "no worker process started"
        await asyncio.sleep(0.05)
    [worker] = _children(process.pid)
    return worker


async def test_a_killed_worker_is_an_error_naming_it_and_process_0_goes_on(
    api: RunningApi, config: Settings, client: httpx.AsyncClient
) -> None:
    """SIGKILL to the worker mid-backlog: process 0 logs an error naming process 1 and goes on alone, then
    stops cleanly on SIGTERM (the killed worker's claimed deliveries fall due again when their lease lapses)."""
    async with serving(Receiver(statuses=[200])) as receiver, dispatcher_process(config, 2) as (process, _):
        worker = await _worker_of(process)
        await _backlog(api, client, "killed worker shop", receiver.url, 3_000)
        await asyncio.sleep(1.0)  # the backlog sets it to work
        os.kill(worker, signal.SIGKILL)
        await asyncio.sleep(1.0)
        assert process.poll() is None  # process 0 goes on
        process.terminate()
        _, err = process.communicate(timeout=dispatcher_module.STOP_TIMEOUT_S + 10)
    assert process.returncode == 0, err
    assert "dispatcher process 1 exited unasked with status -9" in err
