"""Helpers for the ledger's integration tests and benchmark: a reproducible stream, produce, read back.

Holds no tests; named test_ledger_* only to stay inside the ledger's files.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import UUID

import asyncpg
from aiokafka import TopicPartition

from consumers.ledger.check import check_ledger
from consumers.ledger.reading import fingerprint
from consumers.ledger.wire import from_model
from infra import kafka_clients
from infra.local.procs import port_is_free
from infra.settings import Settings
from schemas.accounts import AccountOpened
from schemas.cash import CashIn, CashOut
from schemas.envelope import Envelope
from schemas.events import dump_event
from schemas.payments import (
    PaymentPostRequested,
    PaymentRequested,
    PaymentVoidRequested,
    expiry_outcome_event_id,
    outcome_event_id,
)
from schemas.topics import ACCOUNTS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS, TopicSpec

REPO: Final = Path(__file__).resolve().parents[2]
PYTHON: Final = str(REPO / ".venv" / "bin" / "python")
START: Final = datetime(2026, 1, 1, tzinfo=UTC)
READ_WAIT_S_MAX: Final = 30.0


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _envelope(rng: random.Random, at: datetime) -> dict:
    return {"event_id": _uuid(rng), "occurred_at": at, "producer": "test", "correlation_id": _uuid(rng)}


def make_accounts(
    rng: random.Random, *, citizens: int, merchants: int, agents: int = 2
) -> tuple[list[AccountOpened], list[str], list[str], list[str], str]:
    """Accounts to open: (events, citizen ids, merchant ids, agent ids, employer id)."""
    events: list[AccountOpened] = []

    def opened(prefix: str, kind: str, **extra: object) -> str:
        del prefix  # the kind is in the event; ids are opaque hex tokens
        account_id = f"acc_{rng.getrandbits(64):016x}"
        events.append(
            AccountOpened(
                **_envelope(rng, START),
                account_id=account_id,
                kind=kind,
                holder_token=f"hld_{rng.getrandbits(48):012x}",
                provider="EPMB",
                district="Peshawar",
                **extra,
            )
        )
        return account_id

    citizen_ids = [opened("c", "citizen_wallet", gender=rng.choice(["female", "male"])) for _ in range(citizens)]
    merchant_ids = [opened("m", "merchant", merchant_category="kiryana") for _ in range(merchants)]
    agent_ids = [opened("a", "agent") for _ in range(agents)]
    employer = opened("e", "employer")
    return events, citizen_ids, merchant_ids, agent_ids, employer


def make_requests(
    rng: random.Random,
    *,
    count: int,
    citizens: list[str],
    merchants: list[str],
    agents: list[str],
    employer: str,
    hot_share: float = 0.0,
    step_ms: int = 50,
) -> list[Envelope]:
    """A mixed, reproducible stream: wages, cash in/out, p2p, p2m, two-phase post/void/expiry."""
    events: list[Envelope] = []
    pending: list[PaymentRequested] = []
    at = START
    for _ in range(count):
        at += timedelta(milliseconds=step_ms)
        roll = rng.random()
        citizen = rng.choice(citizens)
        amount = rng.randint(100, 500_000)
        if roll < 0.05:
            events.append(
                PaymentRequested(
                    **_envelope(rng, at),
                    kind="wage",
                    rail="bank",
                    payer_account_id=employer,
                    payee_account_id=citizen,
                    amount=amount * 20,
                )
            )
        elif roll < 0.12:
            events.append(
                CashIn(
                    **_envelope(rng, at),
                    customer_account_id=citizen,
                    agent_account_id=rng.choice(agents),
                    amount=amount * 5,
                )
            )
        elif roll < 0.15:
            events.append(
                CashOut(
                    **_envelope(rng, at),
                    customer_account_id=citizen,
                    agent_account_id=rng.choice(agents),
                    amount=amount,
                )
            )
        elif roll < 0.22:
            payment = PaymentRequested(
                **_envelope(rng, at),
                kind="ecommerce",
                rail="card",
                payer_account_id=citizen,
                payee_account_id=rng.choice(merchants),
                amount=amount,
                pending=True,
                timeout_seconds=rng.choice([0, 1, 3600]),
            )
            events.append(payment)
            pending.append(payment)
        elif roll < 0.27 and pending:
            target = pending.pop(rng.randrange(len(pending)))
            if rng.random() < 0.6:
                partial = rng.choice([None, max(1, target.amount // 2), target.amount + 1])
                events.append(
                    PaymentPostRequested(
                        **_envelope(rng, at),
                        pending_id=target.event_id,
                        payer_account_id=target.payer_account_id,
                        amount=partial,
                    )
                )
            else:
                events.append(
                    PaymentVoidRequested(
                        **_envelope(rng, at), pending_id=target.event_id, payer_account_id=target.payer_account_id
                    )
                )
        elif roll < 0.40:
            events.append(
                PaymentRequested(
                    **_envelope(rng, at),
                    kind="p2p",
                    rail="raast",
                    payer_account_id=citizen,
                    payee_account_id=rng.choice(citizens),
                    amount=amount,
                )
            )
        else:
            hot = rng.random() < hot_share
            events.append(
                PaymentRequested(
                    **_envelope(rng, at),
                    kind="p2m_static_qr",
                    rail="wallet",
                    payer_account_id=citizen,
                    payee_account_id=merchants[0] if hot else rng.choice(merchants),
                    amount=amount,
                )
            )
    return events


def partition_for(key: str, partitions: int) -> int:
    """A stable partition for a key (tests pin partitions so order is reproducible)."""
    return sum(key.encode()) % partitions


async def produce(settings: Settings, events: Iterable[Envelope], *, spec: TopicSpec | None = None) -> int:
    """Publishes events (acks=all) to their catalog topic, keyed by partition key; returns count."""
    producer = kafka_clients.producer(settings, "admin", acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            target = spec or (ACCOUNTS if isinstance(event, AccountOpened) else PAYMENT_REQUESTS)
            key = event.partition_key
            futures.append(
                await producer.send(
                    settings.topic(target),
                    dump_event(event),
                    key=key.encode(),
                    partition=partition_for(key, target.partitions),
                )
            )
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def produce_raw(settings: Settings, spec: TopicSpec, values: list[bytes | None], *, partition: int = 0) -> None:
    """Publishes raw bytes (poison) to one partition."""
    producer = kafka_clients.producer(settings, "admin", acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(spec), value, key=b"poison", partition=partition)
    finally:
        await producer.stop()


async def read_all(
    settings: Settings,
    spec: TopicSpec,
    *,
    expected: int,
    wait_s: float = READ_WAIT_S_MAX,
    isolation_level: str = "read_uncommitted",
) -> list:
    """Reads a topic from the beginning until `expected` messages arrived (or the wait ran out);
    `read_committed` leaves out what aborted transactions wrote."""
    consumer = kafka_clients.consumer(settings, "admin", group_id=None, isolation_level=isolation_level)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(spec), p) for p in range(spec.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for found in batch.values():
                messages.extend(found)
            if len(messages) >= expected and not batch:
                break
        return messages
    finally:
        await consumer.stop()


FREE_PORT_TRIES_MAX = 100
FREE_PORT_RANGE = (20_000, 32_768)  # below Linux's ephemeral ports (32768–60999), above the sandbox's defaults
_pick = random.Random()
_handed_out: set[int] = set()  # every port free_port() / free_ports() gave in this run


def free_port() -> int:
    """A loopback port nothing is bound to right now, not handed out before in this run (each ledger
    process serves its own /metrics), and below the kernel's ephemeral range: a port the kernel offers
    for bind(0) is one it also gives outgoing connections as their own port, and in CI a client's
    connection took the API's port 54362 between this choice and the API's start."""
    for _ in range(FREE_PORT_TRIES_MAX):
        port = _pick.randrange(*FREE_PORT_RANGE)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {FREE_PORT_RANGE} after {FREE_PORT_TRIES_MAX} tries")


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports in a row, none handed out before in this run, below the kernel's
    ephemeral range for the reason free_port() gives (CI: `serve`'s apps never became healthy)."""
    for _ in range(FREE_PORT_TRIES_MAX):
        base = _pick.randrange(FREE_PORT_RANGE[0], FREE_PORT_RANGE[1] - count)
        ports = list(range(base, base + count))
        if _handed_out.isdisjoint(ports) and all(port_is_free(port) for port in ports):
            _handed_out.update(ports)
            return ports
    raise RuntimeError(f"found no {count} free ports in a row in {FREE_PORT_RANGE} after {FREE_PORT_TRIES_MAX} tries")


def settle_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `settle` subprocess pointed at the test's topics and database."""
    env = dict(os.environ)
    env.update(
        KPSANDBOX_TOPIC_PREFIX=settings.topic_prefix,
        KPSANDBOX_DATABASE_URL=settings.dsn,
        KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        KPSANDBOX_LEDGER_METRICS_PORT=str(free_port()),
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


async def run_settle(settings: Settings, *, until_idle: bool = True, timeout_s: float = 120, **env: str):
    """Runs the ledger consumer as a separate process; returns it (finished unless until_idle=False)."""
    args = [PYTHON, "-m", "consumers.ledger", *(["--until-idle"] if until_idle else [])]
    process = await asyncio.create_subprocess_exec(
        *args, env=settle_env(settings, **env), cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=sys.stderr
    )
    if until_idle:
        await asyncio.wait_for(process.wait(), timeout_s)
    return process


async def settled_count(process: asyncio.subprocess.Process) -> int:
    """Waits for a settle process to finish and returns how many requests it says it settled."""
    assert process.stdout is not None
    output = (await process.stdout.read()).decode()
    await process.wait()
    words = output.split()
    return int(words[words.index("settled") + 1])


async def scalar(settings: Settings, query: str) -> object:
    """One value from the test's database."""
    connection = await asyncpg.connect(settings.dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def check_outcome_ids(outcome_values: Iterable[bytes | None], requests: Iterable[Envelope]) -> dict[str, list[dict]]:
    """Asserts every decision outcome carries the id the contract promises for its request and
    result; returns the decision outcomes (expiries left out) grouped by request id."""
    by_id: dict[str, list[Envelope]] = {}
    for request in requests:
        by_id.setdefault(str(request.event_id), []).append(request)  # a reused id: several versions
    grouped: dict[str, list[dict]] = {}
    for value in outcome_values:
        assert value is not None
        outcome = json.loads(value)
        if outcome["event_type"] == "payment.expired":
            assert outcome["event_id"] == str(expiry_outcome_event_id(UUID(outcome["request_event_id"])))
            continue
        versions = by_id[outcome["request_event_id"]]
        expected = {str(outcome_event_id(r.event_id, outcome["result"], fingerprint(from_model(r)))) for r in versions}  # type: ignore[arg-type]
        assert outcome["event_id"] in expected, outcome
        grouped.setdefault(outcome["request_event_id"], []).append(outcome)
    return grouped


async def assert_exactly_once(config: Settings, requests: list) -> None:
    """Nothing lost, nothing doubled: every request decided once and read once, every invariant of
    `ledger check` holds, and every request's outcome reached Kafka with one distinct id (re-published
    copies — the outbox is at-least-once — carry the same id)."""
    assert await scalar(config, "SELECT count(*) FROM ledger_requests") == len(requests)
    assert await scalar(config, "SELECT sum(duplicates) FROM ledger_offsets") == 0
    read = await scalar(config, "SELECT sum(messages) FROM ledger_offsets WHERE topic LIKE '%requests%'")
    assert read == len(requests)
    connection = await asyncpg.connect(config.dsn)
    try:
        findings = await check_ledger(connection, requests_topic=config.topic(PAYMENT_REQUESTS))
    finally:
        await connection.close()
    assert [f.name for f in findings if not f.holds] == []
    outcomes = await read_all(config, PAYMENT_OUTCOMES, expected=len(requests))
    grouped = check_outcome_ids([m.value for m in outcomes], requests)
    assert set(grouped) == {str(r.event_id) for r in requests}
    assert all(len({o["event_id"] for o in found}) == 1 for found in grouped.values())


async def assigned_partitions(port: int) -> int:
    """`kpsandbox_ledger_assigned_partitions` from one ledger process's own /metrics (0 if not up yet)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    lines = [line for line in body.splitlines() if line.startswith("kpsandbox_ledger_assigned_partitions{")]
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines)
