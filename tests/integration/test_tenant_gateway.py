"""Tenants on Kafka, end to end on the real broker and ledger (issue 14): a tenant's own requests
go through the gateway, stamped with the tenant they came from; the ledger refuses a debit of an
account the tenant does not own (`payer_not_owned`) and copies the tenant's outcomes to its own
outcomes topic. Authorisation (who may write which topic) is tested on the secured broker in
test_kafka_security.py; this is the part that does not depend on it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import TopicPartition

from infra import kafka_clients
from infra.kafka_admin import ensure_topics
from infra.settings import Settings
from producers.api.tenants import Tenants
from schemas.accounts import AccountOpened
from schemas.cash import CashIn
from schemas.events import dump_event
from schemas.payments import PaymentRequested
from schemas.topics import PAYMENT_OUTCOMES, TENANT_HEADER, TENANT_TOPIC_PARTITIONS, tenant_topics
from tests.integration.test_ledger_support import REPO, produce, read_all, run_settle, scalar

START = datetime(2026, 5, 1, tzinfo=UTC)
WAIT_S = 120


def _envelope(at: datetime) -> dict:
    return {"event_id": uuid4(), "occurred_at": at, "producer": "sim", "correlation_id": uuid4()}


def _opened(account_id: str, kind: str = "citizen_wallet") -> AccountOpened:
    extra = {"gender": "female"} if kind == "citizen_wallet" else {}
    return AccountOpened(
        **_envelope(START),
        account_id=account_id,
        kind=kind,
        holder_token=f"hld_{uuid4().hex[:12]}",
        provider="EPMB",
        district="Peshawar",
        **extra,
    )


def _pay(payer: str, payee: str, amount: int, minutes: int) -> PaymentRequested:
    return PaymentRequested(
        **_envelope(START + timedelta(minutes=minutes)),
        payer_account_id=payer,
        payee_account_id=payee,
        amount=amount,
        kind="p2p",
        rail="wallet",
    )


async def _tenant_with_wallet(settings: Settings, name: str) -> tuple[str, str]:
    """An API tenant and one wallet it owns (api_accounts row), as the API would store them."""
    connection = await asyncpg.connect(settings.dsn)
    try:
        tenant, _ = await Tenants(connection).create(name=name)
        wallet = f"acc_{uuid4().hex}"
        await connection.execute(
            "INSERT INTO api_accounts (id, tenant_id, kind, alias_token, district, gender)"
            " VALUES ($1, $2, 'citizen_wallet', $3, 'Peshawar', 'female')",
            wallet,
            tenant.id,
            f"rst_{uuid4().hex}",
        )
        return tenant.id, wallet
    finally:
        await connection.close()


async def _send_as_tenant(settings: Settings, topic: str, events: list, *, forged: str | None = None) -> None:
    producer = kafka_clients.producer(settings, "admin", acks="all")
    await producer.start()
    try:
        for event in events:
            headers = [(TENANT_HEADER, forged.encode())] if forged else []
            await producer.send_and_wait(topic, dump_event(event), key=event.partition_key.encode(), headers=headers)
    finally:
        await producer.stop()


async def _run_gateway(settings: Settings) -> str:
    env = dict(os.environ)
    env.update(
        KPSANDBOX_TOPIC_PREFIX=settings.topic_prefix,
        KPSANDBOX_DATABASE_URL=settings.dsn,
        KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        PYTHONPATH=str(REPO),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumers.gateway", "--until-idle",
        env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=sys.stderr,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode == 0
    return out.decode()


async def _outcomes(settings: Settings, topic: str, expected: int) -> list[dict]:
    consumer = kafka_clients.consumer(settings, "admin", group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(TENANT_TOPIC_PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict] = []
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found.extend(json.loads(r.value) for r in records)
            if not batch and len(found) >= expected:
                break  # an empty poll once the expected ones are in: nothing more is there
        return found
    finally:
        await consumer.stop()


@pytest.mark.timeout(300)
def test_a_tenant_debits_only_its_own_accounts_and_reads_its_own_outcomes(fresh_settings: Settings) -> None:
    settings = fresh_settings

    async def scenario() -> None:
        a, a_wallet = await _tenant_with_wallet(settings, "alpha pay")
        b, b_wallet = await _tenant_with_wallet(settings, "beta pay")
        a_requests, a_outcomes = tenant_topics(a)
        _, b_outcomes = tenant_topics(b)
        await ensure_topics(settings, [a_requests, a_outcomes, *tenant_topics(b)])
        agent = f"acc_{uuid4().hex[:16]}"
        opened = [_opened(a_wallet), _opened(b_wallet), _opened(agent, "agent")]
        top_ups = [
            CashIn(**_envelope(START), agent_account_id=agent, customer_account_id=w, amount=10_000)
            for w in (a_wallet, b_wallet)
        ]
        await produce(settings, [*opened, *top_ups])  # the trusted path: accounts and top-ups

        own = _pay(a_wallet, b_wallet, 2_500, minutes=1)
        theirs = _pay(b_wallet, a_wallet, 7_000, minutes=2)
        forged = _pay(b_wallet, a_wallet, 3_000, minutes=3)
        economy = _pay(agent, a_wallet, 1_000, minutes=4)
        topic = settings.topic(a_requests)
        await _send_as_tenant(settings, topic, [own, theirs, economy])
        await _send_as_tenant(settings, topic, [forged], forged=b)  # claims to be B: stamped as A anyway
        summary = await _run_gateway(settings)
        assert "4 requests copied" in summary, summary
        await run_settle(settings, timeout_s=WAIT_S)

        results = {o["request_event_id"]: o["result"] for o in await _outcomes(settings, settings.topic(a_outcomes), 4)}
        assert results == {
            str(own.event_id): "created",
            str(theirs.event_id): "payer_not_owned",
            str(forged.event_id): "payer_not_owned",
            str(economy.event_id): "payer_not_owned",
        }
        assert await _outcomes(settings, settings.topic(b_outcomes), 0) == []  # B sent nothing, hears nothing
        main = await read_all(settings, PAYMENT_OUTCOMES, expected=6)
        assert {json.loads(m.value)["request_event_id"] for m in main} >= set(results)
        balance = "SELECT credits_posted - debits_posted FROM ledger_accounts WHERE id = '{}'"
        assert await scalar(settings, balance.format(b_wallet)) == 10_000 + 2_500
        assert await scalar(settings, balance.format(a_wallet)) == 10_000 - 2_500

    asyncio.run(scenario())
