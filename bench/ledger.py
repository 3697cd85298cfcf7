"""Ledger settlement benchmark: throughput vs raw COPY, hot account, paced latency, consumer RSS.

    .venv/bin/python bench/ledger.py [--payments 200000] [--paced-rate 5000] [--paced-seconds 20] [--keep]

Uses the services of `kpsandbox up` (or KPSANDBOX_* settings). Every run gets a new database and
a new topic prefix. The consumer runs as its own process (`python -m consumers.ledger`), exactly
as `kpsandbox settle` runs it, so its RSS is measured alone. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from consumers.ledger import sql
from infra import kafka_clients
from infra.db import create_database, migrate
from infra.kafka_admin import delete_topics, ensure_topics
from infra.settings import Settings, load_settings, with_overrides
from schemas.topics import ACCOUNTS, CATALOG, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

REPO: Final = Path(__file__).resolve().parents[1]
CITIZENS: Final = 20_000
MERCHANTS: Final = 1_000
HOT_SHARE: Final = 0.7
SEND_CHUNK: Final = 20_000
COPY_BATCH_ROWS: Final = 4_000  # the ledger's batch_size_max: one transaction per batch, like it
POLL_S: Final = 0.25
RUN_WAIT_S_MAX: Final = 900.0
START: Final = datetime(2026, 3, 1, tzinfo=UTC)
PROGRESS: Final = "SELECT coalesce(sum(messages), 0)::bigint FROM ledger_offsets WHERE topic LIKE '%requests%'"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def account_events(employer: str, citizens: list[str], merchants: list[str]) -> list[tuple[str, bytes]]:
    """account.opened for everyone, as (key, JSON)."""

    def opened(account_id: str, kind: str, extra: dict) -> tuple[str, bytes]:
        document = {
            "event_type": "account.opened",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "occurred_at": _iso(START),
            "producer": "bench",
            "correlation_id": str(uuid.uuid4()),
            "account_id": account_id,
            "kind": kind,
            "holder_token": f"hld_{account_id[4:]}",
            "provider": "EPMB",
            "district": "Peshawar",
            **extra,
        }
        return account_id, json.dumps(document).encode()

    events = [opened(employer, "employer", {})]
    events += [opened(c, "citizen_wallet", {"gender": "female"}) for c in citizens]
    events += [opened(m, "merchant", {"merchant_category": "kiryana"}) for m in merchants]
    return events


def payment(payer: str, payee: str, amount: int, kind: str, at: datetime) -> tuple[str, bytes]:
    """One payment.requested as (key, JSON)."""
    document = {
        "event_type": "payment.requested",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": _iso(at),
        "producer": "bench",
        "correlation_id": str(uuid.uuid4()),
        "kind": kind,
        "rail": "raast" if kind == "wage" else "wallet",
        "payer_account_id": payer,
        "payee_account_id": payee,
        "amount": amount,
        "currency": "PKR",
        "pending": False,
        "timeout_seconds": 0,
    }
    return payer, json.dumps(document).encode()


def population() -> tuple[str, list[str], list[str]]:
    """The employer, citizens and merchants (merchants[0] is the hot one)."""
    return (
        "acc_e000000000000000",
        [f"acc_c{i:015x}" for i in range(CITIZENS)],
        [f"acc_d{i:015x}" for i in range(MERCHANTS)],
    )


def payment_stream(count: int, *, hot_share: float, seed: int = 1) -> list[tuple[str, bytes]]:
    """Wages that fund every citizen, then citizen-to-merchant payments (hot_share to merchant 0)."""
    rng = random.Random(seed)
    employer, citizens, merchants = population()
    events = [payment(employer, c, 10_000_000_000, "wage", START) for c in citizens]
    at = START
    for _ in range(count - len(events)):
        at += timedelta(milliseconds=10)
        payee = merchants[0] if rng.random() < hot_share else rng.choice(merchants)
        events.append(payment(rng.choice(citizens), payee, rng.randint(100, 500_000), "p2m_static_qr", at))
    return events


async def send(config: Settings, topic: str, events: list[tuple[str, bytes]]) -> None:
    """Produces (key, value) pairs with acks=all, awaiting in chunks."""
    producer = kafka_clients.producer(config, "admin", acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(events), SEND_CHUNK):
            chunk = events[start : start + SEND_CHUNK]
            futures = [await producer.send(topic, value, key=key.encode()) for key, value in chunk]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def fresh(base: Settings, label: str) -> Settings:
    """A new database and topic prefix for one run."""
    tag = f"{label}{uuid.uuid4().hex[:6]}"
    dsn = await create_database(base, f"bench_{tag}")
    await migrate(dsn)
    config = with_overrides(base, topic_prefix=f"bench-{tag}.", database_url=dsn)
    await ensure_topics(config)
    _created.append(config)
    return config


_created: list[Settings] = []


async def clean_up(base: Settings) -> None:
    """Drops every database and topic this run created (unless --keep)."""
    connection = await asyncpg.connect(base.dsn)
    try:
        for config in _created:
            await connection.execute(f'DROP DATABASE IF EXISTS "{config.dsn.rpartition("/")[2]}" WITH (FORCE)')
            await delete_topics(config, [config.topic(spec) for spec in CATALOG])
    finally:
        await connection.close()


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def start_consumer(
    config: Settings, *, until_idle: bool, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`python -m consumers.ledger` against this run's topics and database.

    `env` replaces the child's environment (bench/security.py passes `settings_env` of a secured
    broker's settings); by default the child reaches this run's broker as an external PLAINTEXT one.
    """
    if env is None:
        env = dict(os.environ)
        env.update(
            KPSANDBOX_TOPIC_PREFIX=config.topic_prefix,
            KPSANDBOX_DATABASE_URL=config.dsn,
            KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
            PYTHONPATH=str(REPO),
        )
    args = [sys.executable, "-m", "consumers.ledger", *(["--until-idle"] if until_idle else [])]
    return await asyncio.create_subprocess_exec(*args, env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE)


async def throughput_run(base: Settings, *, payments: int, hot_share: float, label: str) -> dict:
    """Pre-loads the stream, then times the consumer draining it (settled/s between 5% and 95%)."""
    employer, citizens, merchants = population()
    accounts = account_events(employer, citizens, merchants)
    config = await preload(base, label, accounts, payment_stream(payments, hot_share=hot_share))
    return await timed_drain(config, payments=payments)


async def preload(
    base: Settings, label: str, accounts: list[tuple[str, bytes]], requests: list[tuple[str, bytes]]
) -> Settings:
    """A fresh database and topic prefix with the accounts and then the requests produced to it."""
    config = await fresh(base, label)
    await send(config, config.topic(ACCOUNTS), accounts)
    await send(config, config.topic(PAYMENT_REQUESTS), requests)
    return config


async def timed_drain(config: Settings, *, payments: int, env: dict[str, str] | None = None) -> dict:
    """Times `python -m consumers.ledger --until-idle` draining a pre-loaded run (see start_consumer
    for `env`): settled/s between 5% and 95% of `payments`, so start-up and the tail are left out."""
    connection = await asyncpg.connect(config.dsn)
    process = await start_consumer(config, until_idle=True, env=env)
    samples: list[tuple[float, int]] = []
    rss: list[float] = []
    deadline = time.monotonic() + RUN_WAIT_S_MAX
    try:
        while process.returncode is None and time.monotonic() < deadline:
            samples.append((time.monotonic(), await connection.fetchval(PROGRESS)))
            rss.append(rss_mib(process.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), POLL_S)
        samples.append((time.monotonic(), await connection.fetchval(PROGRESS)))
        created = await connection.fetchval("SELECT count(*) FROM ledger_requests WHERE result = 'created'")
        summary = (await process.stdout.read()).decode().strip()  # type: ignore[union-attr]
    finally:
        await connection.close()

    def first_at(share: float) -> tuple[float, int]:
        return next(s for s in samples if s[1] >= share * payments)

    (t5, n5), (t95, n95) = first_at(0.05), first_at(0.95)
    settled = samples[-1][1]
    half = len(rss) // 2
    return {
        "payments": payments,
        "settled": settled,
        "created": created,
        "settled_per_s": round((n95 - n5) / (t95 - t5)),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_max_first_half": round(max(rss[:half] or [0]), 1),
        "rss_mib_max_second_half": round(max(rss[half:] or [0]), 1),
        "database": config.dsn.rpartition("/")[2],
        "consumer": summary,
    }


async def copy_baseline(base: Settings, *, payments: int) -> dict:
    """Raw asyncpg COPY of the same rows the ledger writes per payment (a transfer and a request)."""
    config = await fresh(base, "copy")
    employer, citizens, _ = population()
    rng = random.Random(2)
    connection = await asyncpg.connect(config.dsn)
    try:
        started = time.monotonic()
        for start in range(0, payments, COPY_BATCH_ROWS):
            ids = [uuid.uuid4() for _ in range(min(COPY_BATCH_ROWS, payments - start))]
            transfers = [
                (i, rng.choice(citizens), employer, 1_000, "PKR", "p2m_static_qr", "wallet", None, 0, 0, START, None)
                for i in ids
            ]
            requests = [
                (i, "payment.requested", "created", "posted", 1_000, b"0123456789abcdef", 0, n)
                for n, i in enumerate(ids)
            ]
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "ledger_transfers", records=transfers, columns=sql.TRANSFER_COLUMNS
                )
                await connection.copy_records_to_table("ledger_requests", records=requests, columns=sql.REQUEST_COLUMNS)
        elapsed = time.monotonic() - started
    finally:
        await connection.close()
    return {"payments": payments, "payments_per_s": round(payments / elapsed)}


async def paced_run(base: Settings, *, rate: int, seconds: int) -> dict:
    """Sends at a fixed rate with wall-clock occurred_at; latency = outcome readable − occurred_at."""
    config = await fresh(base, "paced")
    employer, citizens, merchants = population()
    await send(config, config.topic(ACCOUNTS), account_events(employer, citizens, merchants))
    funding = [payment(employer, c, 10_000_000_000, "wage", datetime.now(UTC)) for c in citizens]
    await send(config, config.topic(PAYMENT_REQUESTS), funding)
    process = await start_consumer(config, until_idle=False)
    outcomes = kafka_clients.consumer(
        config,
        "admin",
        config.topic(PAYMENT_OUTCOMES),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await outcomes.start()
    latencies: list[float] = []
    rss: list[float] = []
    expected = len(funding) + rate * seconds

    async def read() -> None:
        seen = 0
        while seen < expected:
            batch = await outcomes.getmany(timeout_ms=200)
            now = datetime.now(UTC)
            for messages in batch.values():
                for message in messages:
                    seen += 1
                    outcome = json.loads(message.value)
                    if outcome["kind"] != "wage":
                        sent = datetime.fromisoformat(outcome["request_occurred_at"].replace("Z", "+00:00"))
                        latencies.append((now - sent).total_seconds() * 1000)
            rss.append(rss_mib(process.pid))

    reader = asyncio.create_task(read())
    # Pacing starts once the funding wages are settled, so the figures measure steady state only.
    connection = await asyncpg.connect(config.dsn)
    try:
        while (await connection.fetchval(PROGRESS)) < len(funding):
            await asyncio.sleep(POLL_S)
    finally:
        await connection.close()
    producer = kafka_clients.producer(config, "admin", acks="all", enable_idempotence=True, linger_ms=2)
    await producer.start()
    rng = random.Random(3)
    tick_s = 0.01
    per_tick = max(1, int(rate * tick_s))
    started = time.monotonic()
    try:
        for tick in range(int(seconds / tick_s)):
            await asyncio.sleep(max(0.0, started + tick * tick_s - time.monotonic()))
            for _ in range(per_tick):
                key, value = payment(
                    rng.choice(citizens),
                    rng.choice(merchants),
                    rng.randint(100, 50_000),
                    "p2m_static_qr",
                    datetime.now(UTC),
                )
                await producer.send(config.topic(PAYMENT_REQUESTS), value, key=key.encode())
        await producer.flush()
        achieved = rate * seconds / (time.monotonic() - started)
        await asyncio.wait_for(reader, 120)
    finally:
        await producer.stop()
        await outcomes.stop()
        process.send_signal(signal.SIGTERM)
        summary = (await process.stdout.read()).decode().strip()  # type: ignore[union-attr]
        await process.wait()
    latencies.sort()
    return {
        "rate_target": rate,
        "rate_achieved": round(achieved),
        "payments": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(latencies[-1], 1),
        "rss_mib_max": round(max(rss), 1),
        "consumer": summary,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200_000)
    parser.add_argument("--paced-rate", type=int, default=5_000)
    parser.add_argument("--paced-seconds", type=int, default=20)
    parser.add_argument("--only", choices=["copy", "uniform", "hot", "paced"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the run's databases and topics")
    args = parser.parse_args()
    base = load_settings()
    only = set(args.only or ["copy", "uniform", "hot", "paced"])
    result: dict = {}
    if "copy" in only:
        result["copy_baseline"] = await copy_baseline(base, payments=args.payments)
    if "uniform" in only:
        result["uniform"] = await throughput_run(base, payments=args.payments, hot_share=0.0, label="uniform")
    if "hot" in only:
        result["hot_account"] = await throughput_run(base, payments=args.payments, hot_share=HOT_SHARE, label="hot")
    if "paced" in only:
        result["paced"] = await paced_run(base, rate=args.paced_rate, seconds=args.paced_seconds)
    if "copy_baseline" in result and "uniform" in result:
        result["R2"] = round(result["uniform"]["settled_per_s"] / result["copy_baseline"]["payments_per_s"], 3)
    if "hot_account" in result and "uniform" in result:
        result["hot_vs_uniform"] = round(result["hot_account"]["settled_per_s"] / result["uniform"]["settled_per_s"], 3)
    print(json.dumps(result, indent=2))
    if not args.keep:
        await clean_up(base)


if __name__ == "__main__":
    asyncio.run(main())
