"""What the metrics consumer costs the ledger: settled requests/s with and without it running.

    .venv/bin/python bench/metrics_overhead.py [--citizens 20000 --days 40 --repeats 2]

Needs Kafka and PostgreSQL (KPSANDBOX_* settings). Each run gets its own topic prefix and
database holding the same simulated stream (digital-kp scenario). "alone" settles it with the
ledger; "with_metrics" settles it while `python -m consumers.metrics` (a separate process, as
deployed) reads the same topics and serves /metrics. Runs alternate; medians are reported.
The ledger here is `consumers.ledger.consumer.Settler`, in this process, until idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.ledger.consumer import Settler
from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.settings import Settings, load_settings, with_overrides
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka

REPO = Path(__file__).resolve().parent.parent
SERVE_WAIT_S_MAX = 30.0
STOP_WAIT_S_MAX = 30.0
DRAIN_WAIT_S_MAX = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare(base: Settings, args: argparse.Namespace, tag: str) -> Settings:
    name = f"bm_{uuid.uuid4().hex[:8]}_{tag}"
    dsn = await create_database(base, name)
    config = with_overrides(base, topic_prefix=f"{name}.", database_url=dsn, metrics_port=_free_port())
    await migrate(config.dsn)
    await ensure_topics(config)
    scenario = load_scenario("digital-kp")
    merchants = max(1, args.citizens // 10)
    sim = Simulation(
        SimulationConfig(seed=3, days=args.days, citizens=args.citizens, merchants=merchants, scenario=scenario)
    )
    sink = KafkaSink(config)
    await sink.start()
    try:
        await produce_kafka(sim, sink)
    finally:
        await sink.close()
    return config


async def _start_metrics(config: Settings) -> asyncio.subprocess.Process:
    env = os.environ | {
        "KPSANDBOX_TOPIC_PREFIX": config.topic_prefix,
        "KPSANDBOX_DATABASE_URL": config.dsn,
        "KPSANDBOX_METRICS_PORT": str(config.metrics_port),
        "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "consumers.metrics", cwd=REPO, env=env)
    deadline = time.monotonic() + SERVE_WAIT_S_MAX
    while time.monotonic() < deadline:  # running: assigned and reporting its own lag
        if await asyncio.to_thread(_metrics_lag, config.metrics_port) is not None:
            return process
        await asyncio.sleep(0.2)
    process.kill()
    raise RuntimeError("the metrics consumer did not start consuming in time")


def _metrics_lag(port: int) -> int | None:
    """Sum of the metrics consumer's own lag, from its /metrics (None before it reports any)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith('kpsandbox_consumer_lag_messages{group="kp-metrics"')]  # fmt: skip
    return int(sum(values)) if values else None


async def _settle(config: Settings, with_metrics: bool) -> dict[str, float]:
    process = await _start_metrics(config) if with_metrics else None
    result: dict[str, float] = {}
    try:
        started = time.perf_counter()
        summary = await Settler(config).run(until_idle=True)
        elapsed = time.perf_counter() - started
        result = {"requests": summary.requests, "seconds": round(elapsed, 2), "per_s": summary.requests / elapsed}
        if process is not None:  # how long the (lower-priority) metrics consumer needs to catch up
            for _ in range(int(DRAIN_WAIT_S_MAX / 0.5)):
                if await asyncio.to_thread(_metrics_lag, config.metrics_port) == 0:
                    break
                await asyncio.sleep(0.5)
            result["metrics_caught_up_s_after_start"] = round(time.perf_counter() - started, 2)
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), STOP_WAIT_S_MAX)
    return result


async def main(args: argparse.Namespace) -> dict[str, object]:
    base = load_settings()
    runs: dict[str, list[float]] = {"alone": [], "with_metrics": []}
    details = []
    for k in range(args.repeats):
        for mode in ("alone", "with_metrics") if k % 2 == 0 else ("with_metrics", "alone"):
            config = await _prepare(base, args, f"{mode[0]}{k}")
            result = await _settle(config, mode == "with_metrics")
            runs[mode].append(result["per_s"])
            details.append({"mode": mode, **result})
    alone, with_metrics = statistics.median(runs["alone"]), statistics.median(runs["with_metrics"])
    return {
        "citizens": args.citizens,
        "days": args.days,
        "settled_per_s_alone": round(alone),
        "settled_per_s_with_metrics": round(with_metrics),
        "overhead_percent": round(100 * (alone - with_metrics) / alone, 1),
        "runs": details,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
