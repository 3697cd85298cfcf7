"""A running ledger process: it serves /metrics that promtool accepts, and `--until-idle` ends
even when the group gave it no partition."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import signal
import subprocess
from typing import Final

import pytest
from aiokafka import AIOKafkaConsumer

from infra import kafka_clients
from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.settings import Settings, with_overrides
from schemas.topics import CATALOG, PAYMENT_REQUESTS
from tests.conftest import RUN_ID
from tests.integration.test_ledger_support import (
    free_port,
    make_accounts,
    make_requests,
    produce,
    run_settle,
    scalar,
)

WAIT_S_MAX: Final = 60.0


async def _get_metrics(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body


def _sample(body: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix))


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + WAIT_S_MAX
    while asyncio.get_running_loop().time() < deadline:
        try:
            if await predicate():
                return
        except OSError:
            pass  # not listening yet
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with the prometheus package")
async def test_settle_serves_its_metrics_while_it_runs(fresh_settings: Settings) -> None:
    """`settle` serves kpsandbox_ledger_* on its port; promtool accepts the text; the counts follow the work."""
    rng = random.Random(71)
    accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=10, merchants=2)
    requests = make_requests(rng, count=300, citizens=citizens, merchants=merchants, agents=agents, employer=employer)
    await produce(fresh_settings, accounts)
    await produce(fresh_settings, requests)
    port = free_port()
    process = await run_settle(fresh_settings, until_idle=False, KPSANDBOX_LEDGER_METRICS_PORT=str(port))
    try:

        async def all_decided() -> bool:
            body = await _get_metrics(port)
            decided = _sample(body, "kpsandbox_ledger_requests_total{") >= len(requests)
            return decided and _sample(body, "kpsandbox_ledger_lag_messages{") == 0

        await _until(all_decided, "the ledger's /metrics to count every request")
        body = await _get_metrics(port)
        checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert _sample(body, "kpsandbox_ledger_assigned_partitions{") == PAYMENT_REQUESTS.partitions
        assert _sample(body, "kpsandbox_ledger_batches_total{") >= 1
        assert await scalar(fresh_settings, "SELECT count(*) FROM ledger_requests") == len(requests)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), WAIT_S_MAX)
    assert process.returncode == 0


async def test_until_idle_ends_when_the_group_assigns_no_partition(settings: Settings) -> None:
    """More members than partitions: `settle --until-idle` given nothing exits 0 (it used to wait forever)."""
    prefix = f"t{RUN_ID}idle."
    config = with_overrides(
        settings, topic_prefix=prefix, database_url=await create_database(settings, f"t_{RUN_ID}_idle")
    )
    await migrate(config.dsn)
    one_partition = dataclasses.replace(PAYMENT_REQUESTS, partitions=1)
    await ensure_topics(config, [one_partition, *(s for s in CATALOG if s.name != PAYMENT_REQUESTS.name)])
    # A member whose id sorts first ("a-…" < "aiokafka-…") takes the only partition and keeps it.
    holder = kafka_clients.consumer(config, "ledger", group_id="kp-ledger", client_id="a", enable_auto_commit=False)
    holder.subscribe([config.topic(PAYMENT_REQUESTS)])
    await holder.start()
    polling = asyncio.create_task(_poll_forever(holder))
    try:
        await _until(_has_assignment(holder), "the holder to own the partition")
        process = await run_settle(config, timeout_s=WAIT_S_MAX, KPSANDBOX_LEDGER_METRICS_PORT=str(free_port()))
        assert process.stdout is not None
        output = (await process.stdout.read()).decode()
    finally:
        polling.cancel()
        await holder.stop()
    assert process.returncode == 0, output
    assert "partitions none assigned" in output, output


def _has_assignment(consumer: AIOKafkaConsumer):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(consumer.assignment())

    return check


async def _poll_forever(consumer: AIOKafkaConsumer) -> None:
    """Keeps the holder a live member (its heartbeats run anyway; polling keeps it joined after rebalances)."""
    while True:
        await consumer.getmany(timeout_ms=200)
