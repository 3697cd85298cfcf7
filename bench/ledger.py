"""Ledger settlement benchmark: throughput vs raw COPY and raw produce, hot account, paced latency, RSS.

    .venv/bin/python bench/ledger.py [--payments 200000] [--processes 1,2,3] [--paced-rate N]
                                     [--paced-seconds 20] [--only copy|produce|uniform|hot|paced] [--keep]
                                     [--account-ids economy|api] [--rounds N]

Uses the services of `kpsandbox up` (or KPSANDBOX_* settings). Every stream gets a new topic
prefix and every run a new database. With one process the consumer is `python -m consumers.ledger`;
with N it is `kpsandbox settle --processes N` (N such processes of one group, supervised), so its
RSS is measured alone (all its processes together). `--processes 1,2,3` re-settles the same
pre-loaded streams with 1, 2 and 3 processes, each against the same COPY baseline (R2 per count).
The paced test runs at `--paced-rate`, by default half the uniform rate just measured with the same
count, so it loads every machine alike; its sender and reader are bench/paced.py's librdkafka
threads with every payment built beforehand, so the client takes little of the machine. No
autovacuum runs during it: each drained database is dropped once measured (unless --keep), and
the paced run's funding is vacuumed before the clock starts; every paced payment counts. The raw
aiokafka produce rate (bench/kafka_baseline.py) is measured in the same run: settled ÷ produced.
Prints one JSON object: the first count's figures at the top level (as before `--processes` existed)
and, for several counts, one entry per count in `sweep`; the load average before and after (other
work on the machine shows there).

The accounts carry the simulated economy's ids (agt_, wal_, biz_) unless `--account-ids api` gives
them the API's (acc_): an API account's transfers also go into the two partial indexes behind
GET /v1/accounts/{id}/transfers (migration 0025), which the economy's skip. Until 2026-12-02 this
benchmark used acc_ ids, so from migration 0025 on it measured the API's accounts.

With `--rounds N` the raw COPY, the raw produce and the uniform drain (first process count) are
measured N times in a row, each round's ratios from that round's own three figures, and the medians
are printed too (`rounds`, `R2_median`, `settled_per_produced_median`): the baselines alone move
by up to 2x between runs minutes apart on a shared machine (bench/RESULTS.md, "Ledger CPU").

Citizens are funded by cash-in (keyed by the citizen, like their payments), so every decision
depends only on its own partition and N processes decide the same stream the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from bench import paced
from bench.kafka_baseline import measure as measure_produce
from consumers.ledger import sql
from consumers.ledger.consumer import BATCH_SIZE_MAX
from infra import kafka_clients
from infra.db import create_database, migrate
from infra.kafka_admin import delete_topics, ensure_topics
from infra.local.procs import free_ports_base
from infra.settings import Settings, load_settings, with_overrides
from schemas.topics import ACCOUNTS, CATALOG, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

REPO: Final = Path(__file__).resolve().parents[1]
CITIZENS: Final = 20_000
MERCHANTS: Final = 1_000
HOT_SHARE: Final = 0.7
SEND_CHUNK: Final = 20_000
COPY_BATCH_ROWS: Final = BATCH_SIZE_MAX  # the ledger's batch bound: one transaction per batch, like it
POLL_S: Final = 0.25
RUN_WAIT_S_MAX: Final = 900.0
PACED_SHARE: Final = 0.5  # of the uniform rate just measured
PACED_READ_WAIT_S: Final = 120.0
RSS_SAMPLE_S: Final = 0.5
PROCESSES_SWEEP_MAX: Final = 8
STOP_WAIT_S: Final = 60.0
FUNDING_PAISA: Final = 10_000_000_000
START: Final = datetime(2026, 3, 1, tzinfo=UTC)
# Account id prefixes (funder, citizens, merchants) of `--account-ids`: the economy's is the default.
ACCOUNT_IDS: Final = {"economy": ("agt", "wal", "biz"), "api": ("acc", "acc", "acc")}
PROGRESS: Final = "SELECT coalesce(sum(messages), 0)::bigint FROM ledger_offsets WHERE topic LIKE '%requests%'"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def account_events(funder: str, citizens: list[str], merchants: list[str]) -> list[tuple[str, bytes]]:
    """account.opened for everyone (the funder is a cash-in agent), as (key, JSON)."""

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

    events = [opened(funder, "agent", {})]
    events += [opened(c, "citizen_wallet", {"gender": "female"}) for c in citizens]
    events += [opened(m, "merchant", {"merchant_category": "kiryana"}) for m in merchants]
    return events


def cash_in(agent: str, citizen: str, amount: int, at: datetime) -> tuple[str, bytes]:
    """One cash.in as (key, JSON), keyed by the citizen (the partition of their own payments)."""
    document = {
        "event_type": "cash.in",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": _iso(at),
        "producer": "bench",
        "correlation_id": str(uuid.uuid4()),
        "customer_account_id": citizen,
        "agent_account_id": agent,
        "amount": amount,
        "currency": "PKR",
    }
    return citizen, json.dumps(document).encode()


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


def population(ids: str = "economy") -> tuple[str, list[str], list[str]]:
    """The funder (an agent), citizens and merchants (merchants[0] is the hot one), with ACCOUNT_IDS[ids]'s
    prefixes: the simulated economy's (agt_, wal_, biz_) or the API's (acc_). Only the API's accounts
    are listed by GET /v1/accounts/{id}/transfers, so only their transfers also go into its two partial
    indexes (migration 0025): about a quarter of PostgreSQL's CPU per payment here (perf; bench/RESULTS.md)."""
    funder, citizen, merchant = ACCOUNT_IDS[ids]
    return (  # a leading hex digit per role keeps them apart when the prefixes are the same
        f"{funder}_a{0:015x}",
        [f"{citizen}_c{i:015x}" for i in range(CITIZENS)],
        [f"{merchant}_d{i:015x}" for i in range(MERCHANTS)],
    )


def payment_stream(count: int, *, hot_share: float, seed: int = 1, ids: str = "economy") -> list[tuple[str, bytes]]:
    """Cash-in that funds every citizen, then citizen-to-merchant payments (hot_share to merchant 0)."""
    rng = random.Random(seed)
    funder, citizens, merchants = population(ids)
    events = [cash_in(funder, c, FUNDING_PAISA, START) for c in citizens]
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
    _dsns.append(dsn)
    return config


_created: list[Settings] = []
_databases: list[str] = []  # further databases on a stream's topics (one per process count)
_dsns: list[str] = []  # every database above, in the order made


async def fresh_database(config: Settings, label: str) -> Settings:
    """The same topics with a new, migrated database (a re-settle of the same stream)."""
    name = f"{config.dsn.rpartition('/')[2]}_{label}"
    dsn = await create_database(config, name)
    await migrate(dsn)
    _databases.append(name)
    _dsns.append(dsn)
    return with_overrides(config, database_url=dsn)


async def drop_database(base: Settings, name: str) -> None:
    """Drops one database this run created (clean_up drops the rest)."""
    connection = await asyncpg.connect(base.dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def vacuum(dsn: str) -> None:
    """VACUUM (ANALYZE) one database: after a bulk load, so autovacuum does not start on it (up to a minute
    later, for seconds at a fifth of a core) inside the timed window that follows."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


async def drop_databases(base: Settings) -> None:
    """Drops every database this run has made so far (their topics stay until clean_up): a phase that is
    over leaves autovacuum work behind, which would otherwise run inside a later phase's timed window."""
    connection = await asyncpg.connect(base.dsn)
    try:
        for dsn in _dsns:
            await connection.execute(f'DROP DATABASE IF EXISTS "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await connection.close()


async def clean_up(base: Settings) -> None:
    """Drops every database and topic this run created (unless --keep)."""
    connection = await asyncpg.connect(base.dsn)
    try:
        for name in _databases:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for config in _created:
            await connection.execute(f'DROP DATABASE IF EXISTS "{config.dsn.rpartition("/")[2]}" WITH (FORCE)')
            await delete_topics(config, [config.topic(spec) for spec in CATALOG])
    finally:
        await connection.close()


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return 0.0


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (`settle --processes N`: the supervisor and its N ledgers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        children = []
    return rss_mib(pid) + sum(rss_mib(int(child)) for child in children)


async def start_consumer(
    config: Settings, *, until_idle: bool, env: dict[str, str] | None = None, processes: int = 1
) -> asyncio.subprocess.Process:
    """`python -m consumers.ledger` (or `kpsandbox settle --processes N`) against this run's topics
    and database, serving /metrics on free ports.

    `env` replaces the child's environment (bench/security.py passes `settings_env` of a secured
    broker's settings); by default the child reaches this run's broker as an external PLAINTEXT one,
    in a consumer group of its own: a group is the cluster's, not the topic's, so another ledger of
    the default group on the same broker (another benchmark) would rebalance this one's.
    """
    if env is None:
        env = dict(os.environ)
        env.update(
            KPSANDBOX_TOPIC_PREFIX=config.topic_prefix,
            KPSANDBOX_DATABASE_URL=config.dsn,
            KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
            KPSANDBOX_LEDGER_GROUP=f"bench-{uuid.uuid4().hex[:8]}",
            PYTHONPATH=str(REPO),
        )
    env = env | {"KPSANDBOX_LEDGER_METRICS_PORT": str(free_ports_base(processes))}
    idle = ["--until-idle"] if until_idle else []
    if processes == 1:
        args = [sys.executable, "-m", "consumers.ledger", *idle]
    else:
        group = env.get("KPSANDBOX_LEDGER_GROUP", "kp-ledger")
        args = [sys.executable, "-m", "kpsandbox", "settle", "--processes", str(processes), "--group", group, *idle]
    return await asyncio.create_subprocess_exec(*args, env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE)


async def throughput_run(
    base: Settings, *, payments: int, hot_share: float, label: str, processes: int = 1, ids: str = "economy"
) -> dict:
    """Pre-loads the stream, then times the consumer draining it (settled/s between 5% and 95%)."""
    config = await preload_stream(base, payments=payments, hot_share=hot_share, label=label, ids=ids)
    return await timed_drain(config, payments=payments, processes=processes)


async def preload_stream(
    base: Settings, *, payments: int, hot_share: float, label: str, ids: str = "economy"
) -> Settings:
    """A fresh database and topic prefix with this benchmark's accounts and payments on it."""
    funder, citizens, merchants = population(ids)
    accounts = account_events(funder, citizens, merchants)
    return await preload(base, label, accounts, payment_stream(payments, hot_share=hot_share, ids=ids))


async def preload(
    base: Settings, label: str, accounts: list[tuple[str, bytes]], requests: list[tuple[str, bytes]]
) -> Settings:
    """A fresh database and topic prefix with the accounts and then the requests produced to it."""
    config = await fresh(base, label)
    await send(config, config.topic(ACCOUNTS), accounts)
    await send(config, config.topic(PAYMENT_REQUESTS), requests)
    return config


async def timed_drain(
    config: Settings, *, payments: int, env: dict[str, str] | None = None, processes: int = 1
) -> dict:
    """Times the consumer (`processes` of them) with --until-idle draining a pre-loaded run (see
    start_consumer for `env`): settled/s between 5% and 95% of `payments`, so start-up and the tail
    are left out."""
    connection = await asyncpg.connect(config.dsn)
    process = await start_consumer(config, until_idle=True, env=env, processes=processes)
    samples: list[tuple[float, int]] = []
    rss: list[float] = []
    deadline = time.monotonic() + RUN_WAIT_S_MAX
    try:
        while process.returncode is None and time.monotonic() < deadline:
            samples.append((time.monotonic(), await connection.fetchval(PROGRESS)))
            rss.append(tree_rss_mib(process.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), POLL_S)
        samples.append((time.monotonic(), await connection.fetchval(PROGRESS)))
        created = await connection.fetchval("SELECT count(*) FROM ledger_requests WHERE result = 'created'")
        output = (await process.stdout.read()).decode().strip().splitlines()  # type: ignore[union-attr]
    finally:
        await connection.close()
        if process.returncode is None:  # over RUN_WAIT_S_MAX, or this run failed: leave nothing running
            process.terminate()
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)

    def first_at(share: float) -> tuple[float, int]:
        return next(s for s in samples if s[1] >= share * payments)

    (t5, n5), (t95, n95) = first_at(0.05), first_at(0.95)
    settled = samples[-1][1]
    half = len(rss) // 2
    figures = {
        "payments": payments,
        "processes": processes,
        "settled": settled,
        "created": created,
        "settled_per_s": round((n95 - n5) / (t95 - t5)),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_max_first_half": round(max(rss[:half] or [0]), 1),
        "rss_mib_max_second_half": round(max(rss[half:] or [0]), 1),
        "database": config.dsn.rpartition("/")[2],
        "consumer": output[-1] if output else "",
    }
    if processes > 1:
        figures["each_process"] = [line for line in output if line.startswith("ledger ")]
    return figures


async def copy_baseline(base: Settings, *, payments: int, ids: str = "economy") -> dict:
    """Raw asyncpg COPY of the same rows the ledger writes per payment (a transfer and a request)."""
    config = await fresh(base, "copy")
    funder, citizens, _ = population(ids)
    rng = random.Random(2)
    connection = await asyncpg.connect(config.dsn)
    try:
        started = time.monotonic()
        for start in range(0, payments, COPY_BATCH_ROWS):
            ids = [uuid.uuid4() for _ in range(min(COPY_BATCH_ROWS, payments - start))]
            transfers = [
                (i, rng.choice(citizens), funder, 1_000, "PKR", "p2m_static_qr", "wallet", None, 0, 0, START, None)
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


async def produce_baseline(base: Settings, *, messages: int) -> dict:
    """Raw aiokafka produce (acks=all, idempotent) and consume of payment-shaped JSON: the
    denominator of settled ÷ produced (bench/kafka_baseline.py, on a topic of its own)."""
    topic = f"{base.topic_prefix}bench.baseline.{uuid.uuid4().hex[:6]}"
    result = await measure_produce(base, topic, messages)
    return {
        "messages": result.messages,
        "produce_msgs_per_s": round(result.produce_msgs_per_s),
        "consume_msgs_per_s": round(result.consume_msgs_per_s),
    }


async def paced_run(base: Settings, *, rate: int, seconds: int, processes: int = 1, ids: str = "economy") -> dict:
    """Sends at a fixed rate with wall-clock occurred_at; latency = outcome readable − occurred_at.

    Sender and reader are bench/paced.py's librdkafka threads, with every payment built beforehand.
    """
    config = await fresh(base, "paced")
    funder, citizens, merchants = population(ids)
    await send(config, config.topic(ACCOUNTS), account_events(funder, citizens, merchants))
    funding = [cash_in(funder, c, FUNDING_PAISA, datetime.now(UTC)) for c in citizens]
    await send(config, config.topic(PAYMENT_REQUESTS), funding)
    rng = random.Random(3)
    per_tick = max(1, round(rate * paced.TICK_S))  # the rate, to 100/s
    payments = [_prepared(rng, citizens, merchants) for _ in range(int(seconds / paced.TICK_S) * per_tick)]
    process = await start_consumer(config, until_idle=False, processes=processes)
    timings = paced.Timings(expected=len(funding) + len(payments))
    rss: list[float] = []
    sending_s = len(payments) / (per_tick / paced.TICK_S)
    deadline = time.monotonic() + RUN_WAIT_S_MAX + sending_s + PACED_READ_WAIT_S
    reader = asyncio.create_task(
        asyncio.to_thread(paced.read_outcomes, config, config.topic(PAYMENT_OUTCOMES), timings, deadline)
    )
    try:
        # Pacing starts once the funding is settled, so the figures measure steady state only.
        connection = await asyncpg.connect(config.dsn)
        try:
            while (await connection.fetchval(PROGRESS)) < len(funding):
                await asyncio.sleep(POLL_S)
        finally:
            await connection.close()
        # The funding is a bulk load; autovacuum would start on it during the first seconds of pacing (seen
        # with ps: a worker at 35-50% of a core), so the clock would measure the set-up's maintenance.
        await vacuum(config.dsn)
        sender = asyncio.create_task(
            asyncio.to_thread(paced.send_paced, config, config.topic(PAYMENT_REQUESTS), payments, per_tick)
        )
        while not (sender.done() and reader.done()):
            rss.append(tree_rss_mib(process.pid))
            await asyncio.wait({sender, reader}, timeout=RSS_SAMPLE_S)
        achieved = sender.result()
        await reader
        if timings.error:
            raise RuntimeError(timings.error)
    finally:
        process.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(process.stdout.read(), STOP_WAIT_S)).decode().strip()  # type: ignore[union-attr]
        await process.wait()
    latencies, relayed = sorted(timings.latencies_ms), sorted(timings.relayed_ms)
    return {
        "processes": processes,
        "rate_target": rate,
        "rate_paced": round(per_tick / paced.TICK_S),  # the target to 100/s (whole payments per 10 ms tick)
        "rate_achieved": round(achieved),
        "payments": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(latencies[-1], 1),
        # Where it goes: sent → the outcome's record timestamp (stamped by the ledger's relay as it sends).
        "relayed_p50_ms": round(relayed[len(relayed) // 2], 1),
        "relayed_p99_ms": round(relayed[int(len(relayed) * 0.99)], 1),
        "rss_mib_max": round(max(rss), 1),
        "consumer": output.splitlines()[-1] if output else "",
    }


def _prepared(rng: random.Random, citizens: list[str], merchants: list[str]) -> tuple[bytes, bytes]:
    """One payment as (key, JSON) with bench/paced.py's placeholder for its time."""
    key, value = payment(rng.choice(citizens), rng.choice(merchants), rng.randint(100, 50_000), "p2m_static_qr", START)
    return key.encode(), value.replace(_iso(START).encode(), paced.PLACEHOLDER)


def process_counts(text: str) -> list[int]:
    """`1,2,3` → [1, 2, 3]: the process counts to measure, in order, each 1–8."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or len(counts) > PROCESSES_SWEEP_MAX or not all(1 <= n <= PROCESSES_SWEEP_MAX for n in counts):
        raise argparse.ArgumentTypeError(f"a comma-separated list of counts from 1 to {PROCESSES_SWEEP_MAX}")
    return counts


async def one_count(base: Settings, args: argparse.Namespace, only: set[str], streams: dict, n: int) -> dict:
    """Every figure for one process count: each stream re-settled into a fresh database, then paced."""
    figures: dict = {"processes": n}
    for name, config in streams.items():
        drained = await fresh_database(config, f"n{n}")
        figures[name] = await timed_drain(drained, payments=args.payments, processes=n)
        if not args.keep:  # its autovacuum (seconds of a core) would otherwise run during the paced test
            await drop_database(base, drained.dsn.rpartition("/")[2])
    if "paced" in only:
        rate = args.paced_rate or round(PACED_SHARE * figures["uniform"]["settled_per_s"])
        figures["paced"] = await paced_run(
            base, rate=rate, seconds=args.paced_seconds, processes=n, ids=args.account_ids
        )
    return figures


async def more_rounds(base: Settings, args: argparse.Namespace, uniform: Settings, rounds: int) -> list[dict]:
    """`rounds` more rounds of raw COPY, raw produce and the uniform drain (first process count),
    each with its own ratios; the drained databases are dropped as they go (unless --keep)."""
    found = []
    for index in range(rounds):
        copy = await copy_baseline(base, payments=args.payments, ids=args.account_ids)
        produce = await produce_baseline(base, messages=args.payments)
        drained = await fresh_database(uniform, f"r{index}")
        figures = {"uniform": await timed_drain(drained, payments=args.payments, processes=args.processes[0])}
        if not args.keep:
            await drop_database(base, drained.dsn.rpartition("/")[2])
        found.append(
            {
                "copy_per_s": copy["payments_per_s"],
                "produce_per_s": produce["produce_msgs_per_s"],
                "uniform_settled_per_s": figures["uniform"]["settled_per_s"],
            }
            | ratios(figures, copy, produce)
        )
    return found


def ratios(figures: dict, copy: dict | None, produce: dict | None) -> dict:
    """R2 (settled ÷ raw COPY), hot ÷ uniform and settled ÷ raw produce, where both sides were measured."""
    uniform = figures.get("uniform", {}).get("settled_per_s")
    found: dict = {}
    if uniform and copy:
        found["R2"] = round(uniform / copy["payments_per_s"], 3)
    if uniform and "hot_account" in figures:
        found["hot_vs_uniform"] = round(figures["hot_account"]["settled_per_s"] / uniform, 3)
    if uniform and produce:
        found["settled_per_produced"] = round(uniform / produce["produce_msgs_per_s"], 3)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200_000)
    parser.add_argument(
        "--processes", type=process_counts, default=[1], help="ledger processes, or a sweep such as 1,2,3"
    )
    parser.add_argument(
        "--paced-rate", type=int, default=None, help="payments/s (default: half the uniform rate just measured)"
    )
    parser.add_argument("--paced-seconds", type=int, default=20)
    parser.add_argument("--only", choices=["copy", "produce", "uniform", "hot", "paced"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the run's databases and topics")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure COPY, produce and the uniform drain this many times, each ratio from its own round, "
        "and print the medians (needs copy, produce and uniform)",
    )
    parser.add_argument(
        "--account-ids",
        choices=sorted(ACCOUNT_IDS),
        default="economy",
        help="the simulated economy's account ids (default), or the API's, whose transfers also fill "
        "the API's listing indexes",
    )
    args = parser.parse_args()
    only = set(args.only or ["copy", "produce", "uniform", "hot", "paced"])
    if "paced" in only and "uniform" not in only and args.paced_rate is None:
        parser.error("--only paced without uniform needs --paced-rate (the default is half the uniform rate)")
    if args.rounds < 1 or (args.rounds > 1 and not {"copy", "produce", "uniform"} <= only):
        parser.error("--rounds is a count from 1, and more than 1 needs copy, produce and uniform measured")
    base = load_settings()
    result: dict = {"account_ids": args.account_ids, "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    if "copy" in only:
        result["copy_baseline"] = await copy_baseline(base, payments=args.payments, ids=args.account_ids)
    if "produce" in only:
        result["kafka_produce"] = await produce_baseline(base, messages=args.payments)
    streams: dict[str, Settings] = {}  # pre-loaded once, re-settled by every process count
    if "uniform" in only:
        streams["uniform"] = await preload_stream(
            base, payments=args.payments, hot_share=0.0, label="uniform", ids=args.account_ids
        )
    if "hot" in only:
        streams["hot_account"] = await preload_stream(
            base, payments=args.payments, hot_share=HOT_SHARE, label="hot", ids=args.account_ids
        )
    sweep = []
    for n in args.processes:
        figures = await one_count(base, args, only, streams, n)
        sweep.append(figures | ratios(figures, result.get("copy_baseline"), result.get("kafka_produce")))
    result |= sweep[0]
    if len(sweep) > 1:
        result["sweep"] = [
            {
                key: figures[key]
                for key in ("processes", "R2", "hot_vs_uniform", "settled_per_produced")
                if key in figures
            }
            | {name: figures[name]["settled_per_s"] for name in streams}
            | ({"paced_p99_ms": figures["paced"]["p99_ms"]} if "paced" in figures else {})
            for figures in sweep
        ]
        result["sweep_details"] = sweep[1:]
    if args.rounds > 1:
        first = {
            "copy_per_s": result["copy_baseline"]["payments_per_s"],
            "produce_per_s": result["kafka_produce"]["produce_msgs_per_s"],
            "uniform_settled_per_s": sweep[0]["uniform"]["settled_per_s"],
        } | {key: sweep[0][key] for key in ("R2", "settled_per_produced")}
        result["rounds"] = [first, *await more_rounds(base, args, streams["uniform"], args.rounds - 1)]
        for key in ("R2", "settled_per_produced"):
            result[f"{key}_median"] = round(statistics.median(found[key] for found in result["rounds"]), 3)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    if not args.keep:
        await clean_up(base)


if __name__ == "__main__":
    asyncio.run(main())
