"""`operator_stack`: the sandbox's apps running on the shared test stack, with traffic Prometheus has
scraped — what an operator sees after `kpsandbox demo --keep-up`. For the console's browser test
(test_console.py) and the Grafana panels' test.

Interface (import the fixture into the test module: `from tests.integration.operator_support import
operator_stack  # noqa: F401`):

    operator_stack -> OperatorStack   (session scope; the apps stop at the end of the session)
        .settings       Settings of the apps: the test stack's ports, this fixture's own database,
                        topic prefix and state folder (deployment key, apps/*.log)
        .prometheus     the test stack's Prometheus URL (it scrapes TEST_PORTS: all four jobs)
        .api_url        the running API; .tenant_key a tenant's secret key on it
        .receiver       the local webhook receiver (.received: requests so far; every 4th answers 500)
        .missing        console graphs still without data when the bounded wait ended ({} = none);
                        tests decide whether that fails them
    wait_for_data(prometheus, queries, since=, timeout_s=) -> {query: why}   reusable bounded wait: each
                        query must have a finite point in the last RANGE_S seconds

What runs: the five apps of infra/local/apps.py (ledger, metrics, api, views, webhooks) started in the
background by `start_apps`; a short digital-kp simulation produced onto the fixture's topics (the
ledger app settles it live); through the API: a tenant, a webhook endpoint to the local receiver,
top-ups, payments that succeed and payments that fail through magic payees (account_not_found,
exceeds_credits), and a few refused requests (401, 404, 422) so error ratios have data.

The apps hold the test stack's exporter ports (TEST_PORTS) until the session ends, so the tests that
use this fixture run last (tests/integration/conftest.py orders them).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest

from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.local import apps
from infra.local.prometheus import PrometheusService
from infra.secrets import deployment_key
from infra.settings import Settings, with_overrides
from kpsandbox.demo.traffic import Receiver, receiving, wait_scraped
from producers.api.tenants import Tenants
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka
from schemas.api.magic import PAYEE_INSUFFICIENT_FUNDS, PAYEE_NOT_FOUND
from schemas.metrics import JOBS
from tests.conftest import RUN_ID
from tests.console_pages import all_graphs

SIM_DAYS: Final = 35  # the cash-to-digital figures are over 30 simulated days
SIM_CITIZENS: Final = 300
SIM_MERCHANTS: Final = 30
PAYMENTS_OK: Final = 12
PAYMENTS_FAILING: Final = 4  # per failing magic payee
TOP_UP_PAISA: Final = 5_000_000
PAYMENT_PAISA: Final = 10_000
APPS_SCRAPED: Final = (  # wait_scraped's form: {window} is the time since the fixture started
    *(f'max_over_time(up{{{{job="{job}"}}}}[{{window}}]) == 1' for job in JOBS),
    "count(kpsandbox_payments_total) > 0",
    "count(kpsandbox_settlement_latency_seconds_count) > 0",
)
RECEIVER_FAIL_EVERY: Final = 4  # every 4th webhook attempt is answered 500 (then retried)
HTTP_TIMEOUT_S: Final = 10.0
SETTLED_WAIT_S: Final = 60.0
DATA_WAIT_S: Final = 180.0  # Prometheus scrapes every 5 s; rates and 5 m quantiles need two scrapes
RANGE_S: Final = 900  # look for data over the last 15 minutes (the console's graphs show 1 h)
POLL_S: Final = 2.0


@dataclass
class OperatorStack:
    """What the fixture yields (see the module docstring)."""

    settings: Settings
    prometheus: str
    api_url: str
    tenant_key: str
    receiver: Receiver
    missing: dict[str, str]
    started_at: float  # Unix seconds before the apps started: data older than this is an earlier run's


def _range_query(prometheus: str, expr: str, since: float) -> tuple[str, list[Any]]:
    end = time.time()
    start = max(end - RANGE_S, min(since, end - 1))
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "5"}
    url = f"{prometheus}/api/v1/query_range?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read().decode()[:300]}", []
    except OSError as error:
        return f"Prometheus did not answer: {error}", []
    return "", body["data"]["result"]


def _has_point(result: list[Any]) -> bool:
    return any(math.isfinite(float(value)) for series in result for _, value in series["values"])


def wait_for_data(
    prometheus: str, queries: Sequence[str], *, since: float, timeout_s: float = DATA_WAIT_S
) -> dict[str, str]:
    """Polls until each query has a finite point in the last RANGE_S seconds and after `since` (Unix
    seconds: a kept-up Prometheus holds earlier runs' data), at most timeout_s; returns the queries that
    still have none, with the error or 'empty'."""
    deadline = time.monotonic() + timeout_s
    pending = {query: "not asked yet" for query in queries}
    while pending:
        for query in list(pending):
            error, result = _range_query(prometheus, query, since)
            if not error and _has_point(result):
                del pending[query]
            else:
                pending[query] = error or "empty"
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return pending


async def _fresh(settings: Settings, state: Path) -> Settings:
    """The apps' settings: a new database and topic prefix, this state folder, quick webhook retries."""
    dsn = await create_database(settings, f"op_{RUN_ID}")
    config = with_overrides(
        settings, topic_prefix=f"t{RUN_ID}op.", database_url=dsn, state_dir=state, webhook_retry_schedule="1,1"
    )
    await migrate(config.dsn)
    await ensure_topics(config)
    return config


async def _simulate(config: Settings) -> int:
    # Simulated days that end today: the API's payments happen now, and the metrics consumer's
    # 30-day window follows the newest time it has seen, so older simulated days would fall out of it.
    start = datetime.now(UTC).date() - timedelta(days=SIM_DAYS)
    sim = Simulation(SimulationConfig(seed=11, days=SIM_DAYS, citizens=SIM_CITIZENS, merchants=SIM_MERCHANTS,
                                      scenario=load_scenario("digital-kp"), start=start))  # fmt: skip
    sink = KafkaSink(config)
    await sink.start()
    try:
        return await produce_kafka(sim, sink)
    finally:
        await sink.close()


async def _tenant_key(config: Settings) -> str:
    connection = await asyncpg.connect(config.dsn)
    try:
        _, key = await Tenants(connection).create(name=f"operator console {uuid.uuid4().hex[:8]}")
        return key
    finally:
        await connection.close()


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _wallet() -> dict[str, object]:
    msisdn = "0345" + f"{uuid.uuid4().int % 10**7:07d}"
    return {"kind": "citizen_wallet", "msisdn": msisdn, "district": "Peshawar", "gender": "female",
            "tier": "level_2"}  # fmt: skip


def _wait_status(http: httpx.Client, path: str, status: str) -> None:
    deadline = time.monotonic() + SETTLED_WAIT_S
    while (body := _expect(http.get(path), 200))["status"] != status:
        assert time.monotonic() < deadline, f"{path} stayed {body['status']}, expected {status}"
        time.sleep(0.2)


def api_traffic(api_url: str, key: str, receiver_url: str) -> None:
    """Through the running API: a webhook endpoint, a funded wallet, payments that succeed and fail,
    and requests the API refuses."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=HTTP_TIMEOUT_S) as http:
        endpoint = {"url": receiver_url, "events": ["payment.succeeded", "payment.failed"]}
        _expect(http.post("/v1/webhook_endpoints", json=endpoint), 201)
        payer = _expect(http.post("/v1/accounts", json=_wallet()), 201)["id"]
        payee = _expect(http.post("/v1/accounts", json=_wallet()), 201)["id"]
        top_up = _expect(http.post("/v1/test_helpers/top_ups", json={"account": payer, "amount": TOP_UP_PAISA}), 202)
        _wait_status(http, f"/v1/test_helpers/top_ups/{top_up['id']}", "succeeded")
        for _ in range(PAYMENTS_OK):
            _expect(http.post("/v1/payments", json={"payer": payer, "payee": payee, "amount": PAYMENT_PAISA}), 202)
        for alias in (PAYEE_NOT_FOUND, PAYEE_INSUFFICIENT_FUNDS):
            for _ in range(PAYMENTS_FAILING):
                body = {"payer": payer, "payee_alias": alias, "amount": PAYMENT_PAISA}
                _expect(http.post("/v1/payments", json=body), 202)
        _expect(http.post("/v1/payments", json={"payer": payer}), 422)
        _expect(http.get("/v1/payments/pay_doesnotexist"), 404)
        _expect(http.get("/v1/accounts", headers={"Authorization": "Bearer sk_test_wrong"}), 401)


# Proof that the traffic itself was scraped, twice at least (rates need two samples): without these
# a graph can already have data from the apps' health checks alone (the API counts /readyz too).
TRAFFIC_SCRAPED: Final = (
    *(
        f"count_over_time({series}[5m]) >= 2"
        for series in (
            'kpsandbox_api_requests_total{route="/v1/payments",status="202"}',
            'kpsandbox_api_requests_total{status="422"}',
            'kpsandbox_webhook_attempts_total{result="delivered"}',
            'kpsandbox_webhook_attempts_total{result="http_error"}',
            'kpsandbox_digital_share_ratio{basis="count"}',
        )
    ),
    'increase(kpsandbox_ledger_requests_total{result="account_not_found"}[10m]) > 0',
)


def _console_queries() -> list[str]:
    return sorted({expr for graph in all_graphs() for expr in graph.exprs})


@pytest.fixture(scope="session")
def operator_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorStack]:
    """The apps with traffic, scraped (see the module docstring); stopped at the end of the session."""
    started_at = time.time()
    config = asyncio.run(_fresh(settings, tmp_path_factory.mktemp("operator-state")))
    deployment_key(config)  # the API seals webhook secrets with it; the dispatcher opens them
    if settings.prometheus_embedded:  # make sure the running Prometheus scrapes today's jobs and rules
        service = PrometheusService(settings)
        service.prepare()
        service.reload()
    apps.start_apps(config)
    try:
        with receiving(fail_every=RECEIVER_FAIL_EVERY) as receiver:
            # Traffic only once Prometheus has scraped every app, and the metrics consumer's counters at
            # zero: counted before that, a counter would first be seen at its final value, and every
            # rate over it would read 0 ÷ 0 (no data) however long the test waits.
            unready = asyncio.run(wait_scraped(settings.prometheus, APPS_SCRAPED, since=started_at))
            assert not unready, f"Prometheus did not scrape the apps: {unready}"
            asyncio.run(_simulate(config))
            key = asyncio.run(_tenant_key(config))
            api_url = f"http://127.0.0.1:{config.api_port}"
            api_traffic(api_url, key, receiver.url)
            missing = wait_for_data(settings.prometheus, [*TRAFFIC_SCRAPED, *_console_queries()], since=started_at)
            yield OperatorStack(config, settings.prometheus, api_url, key, receiver, missing, started_at)
    finally:
        apps.stop_apps(config)
