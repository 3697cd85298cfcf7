"""`kpsandbox settle --processes N` on real Kafka and PostgreSQL: one, two or three processes of a
group settle one stream to the same digest, and `ledger check` holds each time.

The stream is partition-local: every request's decision depends only on its own partition's
earlier requests (citizens are funded by cash-in, which is keyed by the citizen; payments go to
merchants, which spend nothing; pending transfers expire by their own partition's clock). With
requests that credit a citizen from another partition (a wage, a p2p transfer) the interleaving
of partitions decides some outcomes, and N processes interleave by timing (docs/ledger.md, "Order").
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sys
import urllib.request
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg

from consumers.ledger.digest import ledger_digest
from infra.db import create_database, migrate
from infra.settings import Settings, with_overrides
from schemas.cash import CashIn, CashOut
from schemas.envelope import Envelope
from schemas.payments import PaymentPostRequested, PaymentRequested, PaymentVoidRequested
from schemas.topics import PAYMENT_REQUESTS
from tests.integration.test_ledger_support import (
    PYTHON,
    REPO,
    START,
    assigned_partitions,
    free_ports,
    make_accounts,
    partition_for,
    produce,
    scalar,
    settle_env,
)

REQUESTS: Final = 2_400
CITIZENS: Final = 40
RUN_WAIT_S_MAX: Final = 120.0
JOIN_WAIT_S_MAX: Final = 60.0
POLL_S: Final = 0.2
SCRAPED_WAIT_S_MAX: Final = 45.0  # the targets file is watched; 30 s is Prometheus's fallback re-read
SETTLED: Final = "SELECT coalesce(sum(messages), 0)::bigint FROM ledger_offsets"


def _envelope(rng: random.Random, at: datetime) -> dict:
    def uuid() -> UUID:
        return UUID(int=rng.getrandbits(128), version=4)

    return {"event_id": uuid(), "occurred_at": at, "producer": "test", "correlation_id": uuid()}


def partition_local_stream(
    rng: random.Random, *, count: int, citizens: list[str], merchants: list[str], agents: list[str]
) -> list[Envelope]:
    """Cash-in for every citizen, then cash in/out, purchases, and pending purchases posted,
    voided or left to expire — each request keyed by, and touching the balance of, one citizen."""
    at = START

    def cash(kind: type[CashIn | CashOut], citizen: str, amount: int) -> Envelope:
        agent = rng.choice(agents)
        return kind(**_envelope(rng, at), customer_account_id=citizen, agent_account_id=agent, amount=amount)

    def purchase(citizen: str, amount: int, *, timeout_seconds: int | None = None) -> PaymentRequested:
        pending = timeout_seconds is not None  # a card hold, else a QR payment
        return PaymentRequested(
            **_envelope(rng, at),
            kind="ecommerce" if pending else "p2m_static_qr",
            rail="card" if pending else "wallet",
            payer_account_id=citizen,
            payee_account_id=rng.choice(merchants),
            amount=amount,
            pending=pending,
            timeout_seconds=timeout_seconds or 0,
        )

    events: list[Envelope] = [cash(CashIn, citizen, 2_000_000) for citizen in citizens]
    pending: dict[str, list[PaymentRequested]] = {citizen: [] for citizen in citizens}
    while len(events) < count:
        at += timedelta(milliseconds=50)
        citizen, roll, amount = rng.choice(citizens), rng.random(), rng.randint(100, 300_000)
        mine = pending[citizen]
        if roll < 0.12:
            events.append(cash(CashIn, citizen, amount * 3))
        elif roll < 0.20:
            events.append(cash(CashOut, citizen, amount))
        elif roll < 0.32:
            mine.append(purchase(citizen, amount, timeout_seconds=rng.choice([0, 1, 3600])))
            events.append(mine[-1])
        elif roll < 0.42 and mine:
            target = mine.pop(rng.randrange(len(mine)))
            if rng.random() < 0.4:
                events.append(
                    PaymentVoidRequested(**_envelope(rng, at), pending_id=target.event_id, payer_account_id=citizen)
                )
            else:
                partial = rng.choice([None, max(1, target.amount // 2), target.amount + 1])
                events.append(
                    PaymentPostRequested(
                        **_envelope(rng, at), pending_id=target.event_id, payer_account_id=citizen, amount=partial
                    )
                )
        else:
            events.append(purchase(citizen, amount))
    return events


async def _database(settings: Settings, streamed: Settings, name: str) -> Settings:
    """The stream's topics with a new, migrated database."""
    dsn = await create_database(settings, f"{streamed.topic_prefix.strip('.')}_{name}")
    await migrate(dsn)
    return with_overrides(streamed, database_url=dsn)


async def _kpsandbox(config: Settings, *args: str, port: int) -> asyncio.subprocess.Process:
    # The test stack's state folder: its Prometheus reads the ledger targets file there.
    env = settle_env(config, KPSANDBOX_LEDGER_METRICS_PORT=str(port), KPSANDBOX_STATE_DIR=str(config.state_dir))
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "kpsandbox", *args, env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=sys.stderr
    )


async def _finished(process: asyncio.subprocess.Process) -> str:
    """Its stdout once it exited 0; stopped (SIGTERM: its children finish their batch) if it takes too long."""
    assert process.stdout is not None
    try:
        output = (await asyncio.wait_for(process.stdout.read(), RUN_WAIT_S_MAX)).decode()
        await asyncio.wait_for(process.wait(), RUN_WAIT_S_MAX)
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), RUN_WAIT_S_MAX)
    assert process.returncode == 0, output
    return output


def _ledger_targets_up(settings: Settings) -> set[str]:
    """The instances of the local Prometheus's kpsandbox-ledger job that it scraped successfully."""
    with urllib.request.urlopen(f"{settings.prometheus}/api/v1/targets?state=active", timeout=5) as response:
        targets = json.load(response)["data"]["activeTargets"]
    ledger = [t for t in targets if t["labels"]["job"] == "kpsandbox-ledger" and t["health"] == "up"]
    return {t["labels"]["instance"] for t in ledger}


async def _until(predicate, what: str, wait_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + wait_s
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out after {wait_s:.0f} s waiting for {what}")


async def _digest_and_check(config: Settings, group: str, port: int) -> str:
    """The ledger's digest, after `kpsandbox ledger check --group` found every invariant holding."""
    await _finished(await _kpsandbox(config, "ledger", "check", "--group", group, port=port))
    connection = await asyncpg.connect(config.dsn)
    try:
        return (await ledger_digest(connection)).sha256
    finally:
        await connection.close()


async def test_one_two_or_three_processes_give_one_digest(settings: Settings, fresh_settings: Settings) -> None:
    """Three processes joined before the stream each settle part of it; a re-settle with one and with
    two processes (fresh databases, same topics) gives the same digest; `ledger check` holds each time."""
    rng = random.Random(1313)
    accounts, citizens, merchants, agents, _ = make_accounts(rng, citizens=CITIZENS, merchants=6)
    requests = partition_local_stream(rng, count=REQUESTS, citizens=citizens, merchants=merchants, agents=agents)
    assert {partition_for(c, PAYMENT_REQUESTS.partitions) for c in citizens} == set(range(PAYMENT_REQUESTS.partitions))
    await produce(fresh_settings, accounts)

    three, port = await _database(settings, fresh_settings, "n3"), free_ports(3)[0]
    running = await _kpsandbox(three, "settle", "--processes", "3", "--group", "g3", port=port)
    try:

        async def all_joined() -> bool:
            held = [await assigned_partitions(port + i) for i in range(3)]
            return all(held) and sum(held) == PAYMENT_REQUESTS.partitions

        await _until(all_joined, "three ledger processes to share the partitions", JOIN_WAIT_S_MAX)
        await produce(fresh_settings, requests)

        async def all_settled() -> bool:
            return await scalar(three, SETTLED) == len(requests)

        await _until(all_settled, "every request to be settled", RUN_WAIT_S_MAX)

        async def all_scraped() -> bool:  # processes 2 and 3 come from the targets file
            return await asyncio.to_thread(_ledger_targets_up, settings) >= {f"127.0.0.1:{port + i}" for i in (1, 2)}

        await _until(all_scraped, "Prometheus to scrape ledger processes 2 and 3", SCRAPED_WAIT_S_MAX)
    finally:
        running.send_signal(signal.SIGTERM)
    output = await _finished(running)
    per_process = [int(n) for n in re.findall(r"^ledger \d .*?: settled (\d+) requests", output, re.MULTILINE)]
    assert len(per_process) == 3 and all(per_process), output  # each settled part of the stream
    assert f"all 3 processes: settled {len(requests)} requests" in output, output
    digests = {3: await _digest_and_check(three, "g3", port)}

    for count in (1, 2):
        config, port = await _database(settings, fresh_settings, f"n{count}"), free_ports(count)[0]
        group = f"g{count}"
        args = ("settle", "--processes", str(count), "--group", group, "--until-idle")
        output = await _finished(await _kpsandbox(config, *args, port=port))
        assert f"settled {len(requests)} requests" in output, output
        digests[count] = await _digest_and_check(config, group, port)

    assert digests[1] == digests[2] == digests[3]
    created = int(await scalar(three, "SELECT count(*) FROM ledger_requests WHERE result = 'created'"))  # type: ignore[call-overload]
    assert len(requests) // 2 < created < len(requests)  # mostly settled, some refused: decisions were made
