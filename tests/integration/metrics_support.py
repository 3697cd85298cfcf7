"""Shared by the metrics integration tests: one simulated, settled stream per module."""

from __future__ import annotations

import asyncio
import itertools
import urllib.request
from dataclasses import dataclass, fields

from consumers.ledger.consumer import Settler
from consumers.metrics.aggregate import Figures
from consumers.metrics.consumer import MetricsConsumer
from consumers.metrics.figures import figures
from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.settings import Settings, with_overrides
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka
from tests.conftest import RUN_ID

SIM_DAYS = 40
SIM_CITIZENS = 800
SIM_MERCHANTS = 60
DRAIN_WAIT_S_MAX = 60.0
HTTP_TIMEOUT_S = 5.0
_counter = itertools.count()


@dataclass
class Pipeline:
    """A settled simulation on its own topics and database."""

    settings: Settings
    sim: Simulation


async def build_pipeline(base: Settings, *, settle: bool = True) -> Pipeline:
    """Simulates (digital-kp scenario) onto fresh topics, then (unless told not to) settles every request."""
    n = next(_counter)
    dsn = await create_database(base, f"m_{RUN_ID}_{n}")
    config = with_overrides(base, topic_prefix=f"t{RUN_ID}m{n}.", database_url=dsn)
    await migrate(config.dsn)
    await ensure_topics(config)
    sim = Simulation(
        SimulationConfig(
            seed=7, days=SIM_DAYS, citizens=SIM_CITIZENS, merchants=SIM_MERCHANTS, scenario=load_scenario("digital-kp")
        )
    )
    sink = KafkaSink(config)
    await sink.start()
    try:
        await produce_kafka(sim, sink)
    finally:
        await sink.close()
    if settle:
        await Settler(config).run(until_idle=True)
    return Pipeline(config, sim)


async def run_until_drained(
    consumer: MetricsConsumer, *, serve_http: bool = False
) -> tuple[asyncio.Task, asyncio.Event]:
    """Starts a consumer in a task and waits (bounded) until it has read every topic to its end."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop=stop, serve_http=serve_http))
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(consumer.drained.wait())],
        timeout=DRAIN_WAIT_S_MAX,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if task in done:
        task.result()  # raises what went wrong
    assert consumer.drained.is_set(), f"metrics consumer did not drain within {DRAIN_WAIT_S_MAX} s"
    return task, stop


def domain_figures(f: Figures) -> dict[str, object]:
    """The figures that must not depend on restarts (not the read counters or latency timing)."""
    skip = {"events", "latency_buckets", "latency_sum_s"}
    return {field.name: getattr(f, field.name) for field in fields(f) if field.name not in skip}


def current(consumer: MetricsConsumer) -> dict[str, object]:
    """The restart-independent figures of a consumer right now."""
    return domain_figures(figures(consumer.aggregator))


def scrape(port: int) -> str:
    """The exporter's /metrics text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        return response.read().decode()
