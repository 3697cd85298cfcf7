"""The HTTP API through a real uvicorn server (`python -m producers.api`) on the test stack's Kafka and
PostgreSQL: auth and tenant isolation, problem+json for bad input, accounts opened onto Kafka without the
mobile number, settled by the ledger, and two-line start-up errors (issue 9, items 2, 3, 4, 8, 9)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition

from consumers.ledger.consumer import Settler
from infra import kafka_clients
from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.settings import Settings, with_overrides
from producers.api.iban import iban_is_valid
from producers.api.tenants import Tenants, new_secret_key
from schemas.accounts import AccountOpened
from schemas.api.problems import PROBLEM_MEDIA_TYPE
from schemas.topics import ACCOUNTS
from tests.conftest import RUN_ID
from tests.integration.test_ledger_support import REPO, free_port, settle_env

SETTLE_TIMEOUT_S: Final = 60.0
API_START_TIMEOUT_S: Final = 60.0
API_STOP_TIMEOUT_S: Final = 15.0
FAILED_START_TIMEOUT_S: Final = 60.0
HTTP_TIMEOUT_S: Final = 10.0
POLL_S: Final = 0.2
TOPIC_READ_TIMEOUT_S: Final = 30.0
PROBLEM_KEYS: Final = {"type", "title", "status", "detail", "code", "param"}
MSISDN: Final = "03451234567"
# Every way the test's numbers could leak: as typed, normalised (92…), and the bare subscriber digits.
MSISDNS: Final = ("03451234567", "03009876543", "03331112222")


def _leak_forms(msisdn: str) -> tuple[bytes, ...]:
    subscriber = msisdn[1:]
    return (msisdn.encode(), ("92" + subscriber).encode(), subscriber.encode())


@dataclass(frozen=True)
class RunningApi:
    """A running API process and what the tests need to talk to it and to look behind it."""

    config: Settings
    url: str
    process: subprocess.Popen[str]
    log: Path


def _api_command() -> list[str]:
    return [sys.executable, "-m", "producers.api"]


def _api_env(config: Settings, state_dir: Path, port: int, **extra: str) -> dict[str, str]:
    return settle_env(config, KPSANDBOX_API_PORT=str(port), KPSANDBOX_STATE_DIR=str(state_dir), **extra)


def _wait_healthy(url: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the API exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=POLL_S * 5).status_code == 200:  # the API alone: no ledger here
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    pytest.fail(f"the API did not become healthy in {API_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_api(settings: Settings, state: Path, name: str, **env: str) -> Iterator[RunningApi]:
    """The API as its own process on a free port, over a new database and topic prefix named `name`
    (each test module runs its own); `env` adds to its environment."""
    config = with_overrides(
        settings,
        topic_prefix=f"t{RUN_ID}{name}.",
        database_url=asyncio.run(create_database(settings, f"t_{RUN_ID}_{name}")),
    )
    asyncio.run(migrate(config.dsn))
    asyncio.run(ensure_topics(config))
    port = free_port()
    log = state / "api.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            _api_command(),
            env=_api_env(config, state, port, **env),
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield RunningApi(config=config, url=url, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(API_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(API_STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests."""
    with running_api(settings, tmp_path_factory.mktemp("api-state"), "api") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _tenant_key(config: Settings, name: str, *, revoke: bool = False) -> str:
    connection = await asyncpg.connect(config.dsn)
    try:
        tenants = Tenants(connection)
        tenant, key = await tenants.create(name=f"{name} {uuid.uuid4().hex[:8]}")
        if revoke:
            await tenants.revoke(name_or_id=tenant.id)
        return key
    finally:
        await connection.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_problem(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.headers
    body = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["status"] == status and body["code"] == code and body["param"] == param, body
    assert body["type"] == f"urn:kpsandbox:problem:{code}" and body["title"] and body["detail"], body
    return body


def _wallet(msisdn: str = MSISDN, **fields: object) -> dict[str, object]:
    return {"kind": "citizen_wallet", "msisdn": msisdn, "district": "Peshawar", "gender": "female", **fields}


async def test_readyz_is_ok_when_postgres_and_kafka_answer(client: httpx.AsyncClient) -> None:
    """GET /readyz answers 200 with both checks ok, without a key (/healthz: test_api_health.py)."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and set(body["checks"]) == {"postgres", "kafka"}, body
    assert all(check["ok"] for check in body["checks"].values()), body


async def test_no_unknown_or_revoked_key_is_401(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Every request without a working key is a 401 unauthorized problem with a Bearer challenge."""
    revoked = await _tenant_key(api.config, "revoked", revoke=True)
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-key"},
        _auth(new_secret_key()),
        _auth(revoked),
    ):
        response = await client.post("/v1/accounts", json=_wallet(), headers=headers)
        _assert_problem(response, 401, "unauthorized", "Authorization")
        assert response.headers["www-authenticate"] == "Bearer"
        _assert_problem(
            await client.get("/v1/accounts/acc_" + "0" * 32, headers=headers), 401, "unauthorized", "Authorization"
        )
        for path in ("/v1/payments/pay_" + "0" * 32, "/v1/payments/pay_" + "0" * 32 + "?wait=0.2"):
            # The payment read authenticates in its own query (producers/api/payment_rows.py).
            _assert_problem(await client.get(path, headers=headers), 401, "unauthorized", "Authorization")


async def test_another_tenants_account_is_404(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A tenant reads its own account; another tenant gets 404 for that id, as for an id nobody has."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    created = await client.post("/v1/accounts", json=_wallet("03001112233"), headers=_auth(owner))
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    assert (await client.get(f"/v1/accounts/{account_id}", headers=_auth(owner))).status_code == 200
    _assert_problem(
        await client.get(f"/v1/accounts/{account_id}", headers=_auth(stranger)), 404, "not_found", "account_id"
    )
    _assert_problem(
        await client.get("/v1/accounts/acc_" + "f" * 32, headers=_auth(owner)), 404, "not_found", "account_id"
    )
    _assert_problem(await client.get("/v1/accounts/03001112233", headers=_auth(owner)), 404, "not_found", "account_id")


async def test_bad_input_is_a_4xx_problem_naming_the_param(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Malformed JSON, wrong types, unknown values and fields, bad numbers, oversize bodies and headers:
    4xx problems, never 5xx."""
    key = await _tenant_key(api.config, "careless")
    headers = {**_auth(key), "Content-Type": "application/json"}

    async def post(body: bytes | object) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post("/v1/accounts", content=content, headers=headers)

    _assert_problem(await post(b'{"kind": "citizen_wallet",'), 400, "invalid_json")
    _assert_problem(await post(b"\xff\xfe not json"), 400, "invalid_json")
    _assert_problem(await post([_wallet()]), 400, "invalid_request")
    _assert_problem(await post(_wallet(kind="savings")), 422, "invalid_parameter", "kind")
    _assert_problem(await post(_wallet(gender="robot")), 422, "invalid_parameter", "gender")
    _assert_problem(await post(_wallet(district=42)), 422, "invalid_parameter", "district")
    _assert_problem(await post(_wallet(msisdn=3451234567)), 422, "invalid_parameter", "msisdn")
    _assert_problem(await post(_wallet(colour="green")), 422, "parameter_unexpected", "colour")
    _assert_problem(await post(_wallet(category="kiryana")), 422, "parameter_unexpected", "category")
    _assert_problem(
        await post({"kind": "merchant", "msisdn": MSISDN, "district": "Swat"}), 422, "parameter_missing", "category"
    )
    _assert_problem(
        await post({"kind": "citizen_bank", "msisdn": MSISDN, "district": "Swat"}), 422, "parameter_missing", "gender"
    )
    wrong_number = "04512345678"
    problem = _assert_problem(await post(_wallet(msisdn=wrong_number)), 422, "invalid_parameter", "msisdn")
    assert wrong_number not in json.dumps(problem), "a refused number is not echoed back"
    _assert_problem(await post(_wallet(district="P" * 70_000)), 413, "body_too_large")
    oversize_headers = {**headers, "X-Padding": "p" * 20_000}
    _assert_problem(
        await client.post("/v1/accounts", json=_wallet(), headers=oversize_headers), 431, "headers_too_large"
    )
    _assert_problem(await client.get("/v1/nowhere", headers=headers), 404, "not_found")
    _assert_problem(await client.delete("/v1/accounts", headers=headers), 405, "method_not_allowed")


async def test_one_number_opens_one_account_per_tenant(api: RunningApi, client: httpx.AsyncClient) -> None:
    """The same mobile number twice for one tenant is 409 alias_in_use; another tenant may use it."""
    first, second = await _tenant_key(api.config, "first"), await _tenant_key(api.config, "second")
    assert (await client.post("/v1/accounts", json=_wallet("03214445566"), headers=_auth(first))).status_code == 201
    again = await client.post("/v1/accounts", json=_wallet("+92 321 4445566"), headers=_auth(first))
    _assert_problem(again, 409, "alias_in_use", "msisdn")
    assert (await client.post("/v1/accounts", json=_wallet("03214445566"), headers=_auth(second))).status_code == 201


async def _accounts_records(config: Settings, account_ids: set[str]) -> list[Any]:
    """Every record of the accounts topic, read until the given accounts have all been seen."""
    topic = config.topic(ACCOUNTS)
    consumer = kafka_clients.consumer(config, "admin", isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or range(3))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + TOPIC_READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
            if account_ids <= {record.key.decode() for record in records}:
                return records
        pytest.fail(f"the accounts {account_ids} did not reach {topic} in {TOPIC_READ_TIMEOUT_S} s")
    finally:
        await consumer.stop()


async def test_an_opened_account_reaches_kafka_and_the_ledger_without_the_msisdn(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """Wallet, bank and merchant accounts: account.opened on Kafka keyed by id with tokens only; `opening`
    with zero balance until the ledger settles them, then `open`; no table, topic or log holds a raw number."""
    key = await _tenant_key(api.config, "shop")
    bodies = [
        _wallet(MSISDNS[0]),
        {"kind": "citizen_bank", "msisdn": MSISDNS[1], "district": "Mardan", "gender": "male"},
        {"kind": "merchant", "msisdn": MSISDNS[2], "district": "Swat", "category": "kiryana"},
    ]
    created = []
    for body in bodies:
        response = await client.post("/v1/accounts", json=body, headers=_auth(key))
        assert response.status_code == 201, response.text
        assert all(form.decode() not in response.text for form in _leak_forms(str(body["msisdn"])))
        created.append(response.json())
    wallet, bank, merchant = created
    assert wallet["status"] == "opening" and wallet["balance"] == {"available": 0, "pending": 0, "currency": "PKR"}
    assert wallet["raast_alias"].startswith("rst_") and wallet["iban"] is None
    assert iban_is_valid(bank["iban"]) and bank["iban"][4:8] == "SBOX"
    assert merchant["category"] == "kiryana" and merchant["gender"] is None

    ids = {account["id"] for account in created}
    records = await _accounts_records(api.config, ids)
    events = {record.key.decode(): AccountOpened.model_validate_json(record.value) for record in records}
    for account in created:
        event = events[account["id"]]
        assert event.kind == account["kind"] and event.raast_alias == account["raast_alias"]
        assert event.iban == account["iban"] and event.provider == "SBOX" and event.holder_token.startswith("hld_")
    assert events[merchant["id"]].merchant_category == "kiryana"

    for account in created:
        read = (await client.get(f"/v1/accounts/{account['id']}", headers=_auth(key))).json()
        assert read["status"] == "opening" and read["balance"]["available"] == 0

    await asyncio.wait_for(Settler(api.config).run(until_idle=True), SETTLE_TIMEOUT_S)
    for account in created:
        read = (await client.get(f"/v1/accounts/{account['id']}", headers=_auth(key))).json()
        assert read["status"] == "open", read
        assert read["balance"] == {"available": 0, "pending": 0, "currency": "PKR"}, read

    connection = await asyncpg.connect(api.config.dsn)
    try:
        rows = await connection.fetch("SELECT api_accounts::text AS row FROM api_accounts")
    finally:
        await connection.close()
    stored = "\n".join(row["row"] for row in rows).encode()
    topic_bytes = b"\n".join(bytes(record.value) + bytes(record.key) for record in records)
    api_log = api.log.read_bytes()
    for msisdn in MSISDNS:
        for form in _leak_forms(msisdn):
            assert form not in stored, f"{form!r} in api_accounts"
            assert form not in topic_bytes, f"{form!r} on {api.config.topic(ACCOUNTS)}"
            assert form not in api_log, f"{form!r} in the API's log"


def _failed_start(config: Settings, tmp_path: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _api_command(),
        env=_api_env(config, tmp_path, port, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=FAILED_START_TIMEOUT_S,
        check=False,
    )


def _assert_two_lines(run: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, (run.returncode, run.stderr[-3000:])
    assert len(lines) == 2, run.stderr[-3000:]
    assert lines[0].startswith("error: ") and lines[1].startswith("what to do: "), lines
    for word in words:
        assert word in run.stderr, (word, run.stderr)


def test_a_busy_port_is_a_two_line_error(api: RunningApi, tmp_path: Path) -> None:
    """A second API on the first one's port exits 2 with two lines naming KPSANDBOX_API_PORT."""
    port = int(api.url.rpartition(":")[2])
    _assert_two_lines(_failed_start(api.config, tmp_path, port), "in use", "KPSANDBOX_API_PORT")


def test_unreachable_services_at_start_are_two_line_errors(api: RunningApi, tmp_path: Path) -> None:
    """Kafka or PostgreSQL not answering at start: exit 2 with two lines naming the service, no traceback."""
    nobody = f"127.0.0.1:{free_port()}"
    kafka = _failed_start(api.config, tmp_path, free_port(), KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=nobody)
    _assert_two_lines(kafka, "Kafka")
    postgres = _failed_start(
        api.config, tmp_path, free_port(), KPSANDBOX_DATABASE_URL=f"postgresql://nobody@{nobody}/nothing"
    )
    _assert_two_lines(postgres, "PostgreSQL")
    assert os.environ.get("KPSANDBOX_DATABASE_URL") != f"postgresql://nobody@{nobody}/nothing"
