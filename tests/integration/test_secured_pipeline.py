"""The sandbox on a secured broker (issue 14): the whole pipeline runs with each process as its own
principal; tenants made by `kpsandbox tenants create` reach only their own topics, as an external
client would with the settings alone; a tenant's debit of another's account is `payer_not_owned`;
`tenants revoke` locks the tenant out. PostgreSQL is the shared test stack's."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from consumers.gateway.bridge import run_gateway
from consumers.ledger.check import check_ledger
from consumers.ledger.consumer import Settler
from consumers.metrics.consumer import MetricsConsumer
from consumers.metrics.figures import figures
from infra import kafka_clients
from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.kafka_clients import local_cafile, principals_dir
from infra.kafka_principals import apply_service_acls
from infra.kafka_tls import connection_problem
from infra.roundtrip import round_trip
from infra.settings import Settings, settings_env, with_overrides
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka
from schemas.accounts import AccountOpened
from schemas.cash import CashIn
from schemas.events import dump_event
from schemas.payments import PaymentRequested
from schemas.topics import PAYMENT_REQUESTS, TENANT_TOPIC_PARTITIONS, tenant_topics
from tests.conftest import RUN_ID
from tests.integration.secured_support import SECURED_PORTS, secured_broker
from tests.integration.test_ledger_support import REPO, free_port, produce

START: Final = datetime(2026, 6, 1, tzinfo=UTC)
LOGIN_ATTEMPTS: Final = 40  # SCRAM credentials reach the broker through its metadata log
LOGIN_PAUSE_S: Final = 0.25
READ_WAIT_S: Final = 30.0
PEEK_WAIT_S: Final = 5.0  # how long a tenant tries to read another's topic
CLI_TIMEOUT_S: Final = 120


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """A secured broker, with this module's own database on the shared test stack's PostgreSQL."""
    dsn = asyncio.run(create_database(settings, f"sec_{RUN_ID}"))
    asyncio.run(migrate(dsn))
    with secured_broker(tmp_path_factory.mktemp("secured-pipeline"), f"p{RUN_ID}.") as config:
        yield with_overrides(config, database_url=dsn)


def _cli(config: Settings, *args: str) -> str:
    """`kpsandbox …` as a user runs it, with these settings in its environment."""
    done = subprocess.run(
        [sys.executable, "-m", "kpsandbox", *args],
        env={**settings_env(config), "PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(REPO)},
        cwd=str(REPO), capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _external(config: Settings, out: str) -> Settings:
    """A tenant's client, configured as a startup would configure it: settings only, external mode."""
    lines = dict(
        line.split("=", 1) for line in out.splitlines() if line.startswith(("kafka_", "requests_", "outcomes_"))
    )
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{SECURED_PORTS['kafka_port']}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=lines["kafka_username"],
        kafka_sasl_password=lines["kafka_password"],
        kafka_ssl_cafile=local_cafile(config),
        topic_prefix=config.topic_prefix,
        database_url=config.dsn,
    )


async def _login(settings: Settings, *, refused: bool) -> str | None:
    """Waits (bounded) until a login is accepted (or refused); returns the refusal's message."""
    problem = None
    for _ in range(LOGIN_ATTEMPTS):
        problem = await connection_problem(settings, "admin")
        if (problem is not None) == refused:
            return None if problem is None else problem.message
        await asyncio.sleep(LOGIN_PAUSE_S)
    raise AssertionError(f"login still {'accepted' if refused else 'refused'}: {problem}")


def test_the_pipeline_runs_on_sasl_ssl(secured: Settings) -> None:
    """simulate (economy) → settle (ledger) → metrics (metrics), each as its own principal."""
    config = with_overrides(secured, topic_prefix=f"p{RUN_ID}sim.")

    async def scenario() -> None:
        await ensure_topics(config)
        await apply_service_acls(config)
        sim = Simulation(
            SimulationConfig(seed=11, days=20, citizens=300, merchants=30, scenario=load_scenario("digital-kp"))
        )
        sink = KafkaSink(config)
        await sink.start()
        try:
            await produce_kafka(sim, sink)
        finally:
            await sink.close()
        summary = await Settler(config).run(until_idle=True)
        assert summary.requests > 0
        connection = await asyncpg.connect(config.dsn)
        try:
            findings = await check_ledger(connection, requests_topic=config.topic(PAYMENT_REQUESTS))
        finally:
            await connection.close()
        assert all(f.holds for f in findings), [f for f in findings if not f.holds]
        metrics = MetricsConsumer(config, group=f"kp-metrics-{RUN_ID}")
        await asyncio.wait_for(metrics.run(until_idle=True, serve_http=False), READ_WAIT_S * 4)
        counted = figures(metrics.aggregator)
        cash = sum(c for (instrument, *_), (c, _) in counted.payments.items() if instrument == "cash")
        assert cash == sim.stats.cash_count > 0
        assert 0 < counted.digital_share[("count", "all")] < 1

    asyncio.run(scenario())


def _pay(payer: str, payee: str, amount: int, minutes: int) -> PaymentRequested:
    return PaymentRequested(
        event_id=uuid4(),
        occurred_at=START + timedelta(minutes=minutes),
        producer="startup-app",
        correlation_id=uuid4(),
        payer_account_id=payer,
        payee_account_id=payee,
        amount=amount,
        kind="p2p",
        rail="wallet",
    )


async def _own_wallet(config: Settings, tenant_id: str) -> str:
    """A wallet the tenant owns, as the API stores it; opened and topped up on the trusted path."""
    wallet = f"acc_{uuid4().hex}"
    connection = await asyncpg.connect(config.dsn)
    try:
        await connection.execute(
            "INSERT INTO api_accounts (id, tenant_id, kind, alias_token, district, gender)"
            " VALUES ($1, $2, 'citizen_wallet', $3, 'Swat', 'female')",
            wallet, tenant_id, f"rst_{uuid4().hex}",
        )  # fmt: skip
    finally:
        await connection.close()
    envelope = {"occurred_at": START, "producer": "api", "correlation_id": uuid4()}
    agent = f"acc_{uuid4().hex[:16]}"
    await produce(
        config,
        [
            AccountOpened(event_id=uuid4(), **envelope, account_id=wallet, kind="citizen_wallet",
                          holder_token=f"hld_{uuid4().hex[:12]}", provider="EPMB", district="Swat", gender="female"),
            AccountOpened(event_id=uuid4(), **envelope, account_id=agent, kind="agent",
                          holder_token=f"hld_{uuid4().hex[:12]}", provider="EPMB", district="Swat"),
            CashIn(event_id=uuid4(), **envelope, agent_account_id=agent, customer_account_id=wallet, amount=20_000),
        ],
    )  # fmt: skip
    return wallet


async def _put(settings: Settings, topic: str, value: bytes) -> None:
    producer = kafka_clients.producer(settings, "admin", acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read(
    settings: Settings, topic: str, group: str, expected: int, *, wait_s: float = READ_WAIT_S
) -> list[dict]:
    consumer = kafka_clients.consumer(settings, "admin", group_id=group, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(TENANT_TOPIC_PARTITIONS)])
        found: list[dict] = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(json.loads(r.value) for r in records)
        return found
    finally:
        await consumer.stop()


def test_tenants_reach_only_their_own_topics_and_accounts(secured: Settings, caplog: pytest.LogCaptureFixture) -> None:
    alpha = _external(secured, _cli(secured, "tenants", "create", f"alpha {RUN_ID}"))
    beta = _external(secured, _cli(secured, "tenants", "create", f"beta {RUN_ID}"))
    a, b = alpha.kafka_sasl_username, beta.kafka_sasl_username
    assert a is not None and b is not None and a.startswith("ten_")
    a_requests, a_outcomes = (secured.topic(spec) for spec in tenant_topics(a))
    b_requests, b_outcomes = (secured.topic(spec) for spec in tenant_topics(b))

    async def scenario() -> None:
        a_wallet, b_wallet = await _own_wallet(secured, a), await _own_wallet(secured, b)
        await _login(alpha, refused=False)
        own, theft = _pay(a_wallet, b_wallet, 1_500, 1), _pay(b_wallet, a_wallet, 9_000, 2)
        producer = kafka_clients.producer(alpha, "admin", acks="all", request_timeout_ms=10_000)
        await producer.start()
        try:
            for event in (own, theft):
                await producer.send_and_wait(a_requests, dump_event(event), key=event.partition_key.encode())
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(producer.send_and_wait(b_requests, dump_event(own)), 15)
        finally:
            await producer.stop()
        await _put(secured, b_outcomes, b"beta's business")
        assert await _read(alpha, b_outcomes, f"{a}-peek", 1, wait_s=PEEK_WAIT_S) == []
        assert f"Topic {b_outcomes} is not authorized" in caplog.text  # refused, not merely empty

        await run_gateway(secured, stop=asyncio.Event(), until_idle=True)
        await Settler(secured).run(until_idle=True)
        results = {o["request_event_id"]: o["result"] for o in await _read(alpha, a_outcomes, f"{a}-app", 2)}
        assert results == {str(own.event_id): "created", str(theft.event_id): "payer_not_owned"}

    asyncio.run(scenario())
    revoked = _cli(secured, "tenants", "revoke", a)
    assert "Kafka: its credentials and" in revoked
    message = asyncio.run(_login(alpha, refused=True))
    assert message is not None and a in message


def _external_admin(config: Settings, **overrides: object) -> Settings:
    """The operator's own client of the secured broker, in external mode: settings only."""
    password = (principals_dir(config) / "admin").read_text().strip()
    return Settings(
        **{
            "kafka_bootstrap_servers": f"127.0.0.1:{SECURED_PORTS['kafka_port']}",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "kp-admin",
            "kafka_sasl_password": password,
            "kafka_ssl_cafile": local_cafile(config),
            "topic_prefix": config.topic_prefix,
            "database_url": config.dsn,
            **overrides,
        }
    )


def test_an_external_client_reaches_the_secured_broker_with_settings_only(secured: Settings) -> None:
    external = _external_admin(secured)
    assert not external.kafka_embedded
    result = asyncio.run(round_trip(external, f"{secured.topic_prefix}ext-roundtrip", [b"a", b"b", b"c"], "ext-rt"))
    assert result.matched and result.received == 3


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "KPSANDBOX_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_password": "not-it-at-all"}, "KPSANDBOX_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "KPSANDBOX_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_a_wrong_setting_is_two_lines_naming_it_not_unreachable(
    secured: Settings, overrides: dict[str, str], named: str
) -> None:
    """`kpsandbox settle` with one wrong security setting: exit 2, the setting named, no traceback,
    no password, within a bounded time (never a hang)."""
    wrong = _external_admin(secured, ledger_metrics_port=free_port(), **overrides)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kpsandbox", "settle", "--until-idle"],
        env={**settings_env(wrong), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        cwd=str(REPO), capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    assert "not-it-at-all" not in done.stderr + done.stdout
    assert time.monotonic() - began < CLI_TIMEOUT_S / 2
