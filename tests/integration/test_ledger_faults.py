"""The ledger under faults: SIGKILL between commit steps, PostgreSQL restarts, a rebalance mid-stream."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess

import asyncpg
import pytest

from infra.local.postgres import PostgresService, pg_bin_dir
from infra.settings import Settings
from tests.integration.test_ledger_support import (
    assert_exactly_once,
    assigned_partitions,
    free_port,
    make_accounts,
    make_requests,
    produce,
    run_settle,
    scalar,
    settled_count,
)

PROGRESS_WAIT_S_MAX = 60.0


async def _stream(config: Settings, *, seed: int, count: int) -> list:
    rng = random.Random(seed)
    accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=80, merchants=8)
    requests = make_requests(rng, count=count, citizens=citizens, merchants=merchants, agents=agents, employer=employer)
    await produce(config, accounts)
    await produce(config, requests)
    return requests


async def _wait_for(config: Settings, query: str, *, at_least: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROGRESS_WAIT_S_MAX
    while loop.time() < deadline:
        try:
            if (await scalar(config, query) or 0) >= at_least:
                return
        except (OSError, asyncpg.CannotConnectNowError):
            pass  # the server is restarting
        await asyncio.sleep(0.1)
    raise AssertionError(f"no progress: {query} stayed below {at_least}")


def _restart_postgres(settings: Settings) -> None:
    """`pg_ctl restart -m fast` on the test stack's server, its output to the server log.

    (Without `-l`, the restarted postmaster inherits pg_ctl's stdout and a captured run never ends.)
    """
    service = PostgresService(settings)
    argv = [str(pg_bin_dir() / "pg_ctl"), "-D", str(service.data_dir), "-l", str(service.log_file)]
    argv += ["-m", "fast", "-w", "-t", "60", "restart"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90, check=True)


@pytest.mark.parametrize("point", ["after_db_commit", "after_outcome_publish"])
async def test_sigkill_between_commit_steps_loses_and_doubles_nothing(fresh_settings: Settings, point: str) -> None:
    """Killed after the database commit (before outcomes / offset commit), a restart doubles and loses nothing."""
    requests = await _stream(fresh_settings, seed=21, count=800)
    crashed = await run_settle(fresh_settings, KPSANDBOX_LEDGER_CRASH_AT=point)
    assert crashed.returncode == 137
    committed = await scalar(fresh_settings, "SELECT count(*) FROM ledger_requests")
    assert committed > 0  # the crash really came after a database commit
    if point == "after_db_commit":
        assert await scalar(fresh_settings, "SELECT count(*) FROM ledger_outbox") == 1  # outcomes not yet sent

    restarted = await run_settle(fresh_settings)
    assert restarted.returncode == 0
    await assert_exactly_once(fresh_settings, requests)


async def test_postgres_restart_mid_run(settings: Settings, fresh_settings: Settings) -> None:
    """A PostgreSQL restart while settling only pauses the consumer; the ledger stays exact."""
    if not settings.postgres_embedded:
        pytest.skip("needs the test stack's own PostgreSQL to restart it")
    requests = await _stream(fresh_settings, seed=33, count=3_000)
    process = await run_settle(fresh_settings, until_idle=False)
    try:
        await _wait_for(fresh_settings, "SELECT count(*) FROM ledger_requests", at_least=1)
        await asyncio.to_thread(_restart_postgres, settings)
        await _wait_for(fresh_settings, "SELECT 1", at_least=1)  # up again (retries refused connects)
        await _wait_for(fresh_settings, "SELECT count(*) FROM ledger_requests", at_least=len(requests))
    finally:
        process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(settled_count(process), 60) == len(requests)
    assert process.returncode == 0
    await assert_exactly_once(fresh_settings, requests)


async def _until_assigned(port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROGRESS_WAIT_S_MAX
    while loop.time() < deadline:
        if await assigned_partitions(port) > 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the ledger on port {port} was never assigned a partition")


async def test_two_consumers_rebalance_mid_stream(fresh_settings: Settings) -> None:
    """Two processes in one group, the second joining mid-stream, settle every request exactly once."""
    requests = await _stream(fresh_settings, seed=45, count=2_000)
    first = await run_settle(fresh_settings, until_idle=False)
    second = None
    try:
        await _wait_for(fresh_settings, "SELECT count(*) FROM ledger_requests", at_least=1)
        port = free_port()
        second = await run_settle(fresh_settings, until_idle=False, KPSANDBOX_LEDGER_METRICS_PORT=str(port))
        # No sleeps: the rest is produced once the group has given the second process partitions
        # (its own /metrics says so), so both processes must settle part of it.
        await _until_assigned(port)
        rng = random.Random(46)
        accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=40, merchants=4)
        more = make_requests(rng, count=6_000, citizens=citizens, merchants=merchants, agents=agents, employer=employer)
        await produce(fresh_settings, accounts)
        await produce(fresh_settings, more)
        requests += more
        await _wait_for(fresh_settings, "SELECT count(*) FROM ledger_requests", at_least=len(requests))
    finally:
        for process in (first, second):
            if process is not None:
                process.send_signal(signal.SIGTERM)
    assert second is not None
    counts = [await asyncio.wait_for(settled_count(p), 60) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0
    assert min(counts) > 0  # both really settled: partitions moved between them
    assert sum(counts) == len(requests)  # and no batch was committed by both
    await assert_exactly_once(fresh_settings, requests)
