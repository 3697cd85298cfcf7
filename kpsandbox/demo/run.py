"""The demo pipeline: simulation → Kafka → ledger (+ metrics) consumer processes → read-back.

The ledger and metrics consumers run as separate processes, as they would in production, so the ledger has its
own core while the simulation produces. The demo waits (bounded) until each consumer group has
committed everything, then stops them with SIGTERM (they finish their batch and exit).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from consumers.ledger.check import Finding, check_ledger
from consumers.ledger.consumer import GROUP_DEFAULT as LEDGER_GROUP
from consumers.ledger.digest import ledger_digest
from consumers.metrics.consumer import GROUP_DEFAULT as METRICS_GROUP
from infra.db import CONNECT_TIMEOUT_S, create_database, migrate
from infra.errors import SandboxError
from infra.kafka_admin import ensure_topics, group_lag
from infra.local.prometheus import SCRAPE_INTERVAL_S, prometheus_version
from infra.settings import Settings, settings_env, with_overrides
from kpsandbox.demo.outcomes import OutcomeTally, tally_outcomes
from producers.sim.engine import Simulation
from producers.sinks import KafkaSink, produce_kafka
from schemas.topics import ACCOUNTS, CASH, ORDERS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

DRAIN_TIMEOUT_S: Final = 600.0
DRAIN_POLL_S: Final = 0.5
CONSUMER_STOP_TIMEOUT_S: Final = 30.0

Progress = Callable[[str, int, int], None]  # stage, done, total


@dataclass
class ConsumerProcess:
    """One consumer running as a child process, with its log file."""

    name: str
    group: str
    topics: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        """Raises a SandboxError pointing at the log if the process died."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise SandboxError(
                f"the {self.name} consumer exited with status {self.process.returncode}: {' / '.join(tail)}",
                f"read {self.log}",
            )

    def stop(self) -> int:
        """SIGTERM, wait for the current batch to finish; SIGKILL after a bounded wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(CONSUMER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class DemoRun:
    """Everything the report needs."""

    settings: Settings
    sim: Simulation
    produced: int = 0
    produce_seconds: float = 0.0
    settle_seconds: float = 0.0
    outcomes: OutcomeTally = field(default_factory=OutcomeTally)
    findings: list[Finding] = field(default_factory=list)
    digest: str = ""


async def prepare_run(base: Settings, run_id: str) -> Settings:
    """A topic prefix and a database of this run's own, so reruns never mix with earlier data."""
    database = f"demo_{run_id}"
    dsn = await create_database(base, database)
    settings = with_overrides(base, topic_prefix=f"{base.topic_prefix}demo-{run_id}.", database_url=dsn)
    await migrate(settings.dsn)
    await ensure_topics(settings)
    return settings


def start_consumer(
    settings: Settings, name: str, argv: list[str], group: str, topics: list[str], logs: Path
) -> ConsumerProcess:
    """Starts `python -m …` with this run's settings in its environment."""
    log = logs / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")} | settings_env(settings)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *argv], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return ConsumerProcess(name, group, topics, process, log)


async def wait_drained(settings: Settings, consumer: ConsumerProcess, progress: Progress, total: int) -> None:
    """Polls the group's lag until zero (bounded); reports progress as messages committed."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        consumer.check_alive()
        lag = sum((await group_lag(settings, consumer.group, consumer.topics)).values())
        progress(consumer.name, max(0, total - lag), total)
        if lag == 0:
            return
        await asyncio.sleep(DRAIN_POLL_S)
    raise SandboxError(
        f"the {consumer.name} consumer did not catch up within {DRAIN_TIMEOUT_S:.0f} s",
        f"read {consumer.log}; a smaller --citizens or --days finishes sooner",
    )


async def wait_scraped(settings: Settings) -> None:
    """Gives Prometheus two scrape intervals to take the final figures (when it is reachable)."""
    if prometheus_version(settings.prometheus) is not None:
        await asyncio.sleep(2 * SCRAPE_INTERVAL_S)


async def produce(settings: Settings, sim: Simulation, progress: Progress) -> int:
    """Produces the whole simulation to Kafka (idempotent producer, acks=all)."""
    sink = KafkaSink(settings)
    await sink.start()
    days = sim.config.days
    try:
        return await produce_kafka(sim, sink, None, lambda _events, done: progress("simulate", done, days))
    finally:
        await sink.close()


async def check(settings: Settings) -> tuple[list[Finding], str]:
    """The ledger's reconciliation report and digest for this run's database."""
    connection = await asyncpg.connect(settings.dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        findings = await check_ledger(connection, requests_topic=settings.topic(PAYMENT_REQUESTS))
        return findings, (await ledger_digest(connection)).sha256
    finally:
        await connection.close()


async def run_pipeline(settings: Settings, sim: Simulation, logs: Path, progress: Progress) -> DemoRun:
    """Runs producers and consumers to completion and reads the outcome back."""
    run = DemoRun(settings=settings, sim=sim)
    requests_topic = settings.topic(PAYMENT_REQUESTS)
    ledger = start_consumer(settings, "ledger", ["-m", "consumers.ledger"], LEDGER_GROUP, [requests_topic], logs)
    metrics_topics = [settings.topic(spec) for spec in (PAYMENT_OUTCOMES, CASH, ACCOUNTS, ORDERS)]
    metrics = start_consumer(settings, "metrics", ["-m", "consumers.metrics"], METRICS_GROUP, metrics_topics, logs)
    consumers = [ledger, metrics]
    try:
        began = time.monotonic()
        run.produced = await produce(settings, sim, progress)
        run.produce_seconds = time.monotonic() - began
        requests = sum(sim.stats.events_by_type.get(t, 0) for t in _REQUEST_TYPES)
        await wait_drained(settings, ledger, progress, requests)
        run.settle_seconds = time.monotonic() - began
        # Metrics read every produced event except the requests, plus one outcome per request.
        await wait_drained(settings, metrics, progress, run.produced)
        await wait_scraped(settings)
    finally:
        for consumer in consumers:
            consumer.stop()
    run.outcomes = await tally_outcomes(settings)
    run.findings, run.digest = await check(settings)
    return run


_REQUEST_TYPES: Final = (
    "payment.requested",
    "payment.post_requested",
    "payment.void_requested",
    "cash.in",
    "cash.out",
)
