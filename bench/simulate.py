"""Simulation speed and memory: events/s to a file, events/s to Kafka beside the raw baseline,
and peak RSS for a million citizens.

    .venv/bin/python bench/simulate.py file   [--citizens 100000 --days 5]
    .venv/bin/python bench/simulate.py kafka  [--citizens 50000 --days 4]   # needs Kafka (KPSANDBOX_*)
    .venv/bin/python bench/simulate.py memory [--citizens 1000000 --merchants 100000 --days 1]

Each mode prints one JSON object. Every mode runs on one core (one Python thread; Kafka mode
shares the machine with the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `bench.kafka_baseline`

from producers.sim.engine import Simulation, SimulationConfig
from producers.sinks import KafkaSink, produce_kafka, write_file


def _sim(args: argparse.Namespace) -> tuple[Simulation, float]:
    started = time.perf_counter()
    sim = Simulation(SimulationConfig(seed=args.seed, days=args.days, citizens=args.citizens, merchants=args.merchants))
    return sim, time.perf_counter() - started


def bench_file(args: argparse.Namespace) -> dict:
    """Events per second written as JSON Lines to a file (population build excluded)."""
    sim, build_s = _sim(args)
    path = f"/tmp/kpsandbox-bench-{os.getpid()}.jsonl"
    started = time.perf_counter()
    with open(path, "wb") as handle:
        events = write_file(sim, handle)
    elapsed = time.perf_counter() - started
    size = os.path.getsize(path)
    os.unlink(path)
    return {
        "mode": "file",
        "citizens": args.citizens,
        "merchants": args.merchants,
        "days": args.days,
        "events": events,
        "build_s": round(build_s, 2),
        "run_s": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "bytes": size,
    }


async def bench_kafka(args: argparse.Namespace) -> dict:
    """Events per second produced (acks=all, idempotent), then the raw baseline in the same process."""
    from bench.kafka_baseline import measure
    from infra.kafka_admin import delete_topics, ensure_topics
    from infra.settings import load_settings, with_overrides

    settings = with_overrides(load_settings(), topic_prefix=f"bench-sim-{uuid.uuid4().hex[:6]}.")
    await ensure_topics(settings)
    sim, build_s = _sim(args)
    sink = KafkaSink(settings)
    await sink.start()
    started = time.perf_counter()
    try:
        events = await produce_kafka(sim, sink)
    finally:
        await sink.close()
    elapsed = time.perf_counter() - started
    baseline = await measure(settings, f"bench-sim-baseline-{uuid.uuid4().hex[:6]}", args.baseline)
    from schemas.topics import CATALOG

    await delete_topics(settings, [settings.topic(spec) for spec in CATALOG])
    rate = events / elapsed
    return {
        "mode": "kafka",
        "citizens": args.citizens,
        "days": args.days,
        "events": events,
        "build_s": round(build_s, 2),
        "run_s": round(elapsed, 2),
        "sim_events_per_s": round(rate),
        "baseline_produce_msgs_per_s": round(baseline.produce_msgs_per_s),
        "ratio_to_baseline": round(rate / baseline.produce_msgs_per_s, 2),
    }


def bench_memory(args: argparse.Namespace) -> dict:
    """Peak RSS of building and running a large population (events written to /dev/null)."""
    sim, build_s = _sim(args)
    started = time.perf_counter()
    with open(os.devnull, "wb") as handle:
        events = write_file(sim, handle)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": "memory",
        "citizens": args.citizens,
        "merchants": args.merchants,
        "days": args.days,
        "events": events,
        "build_s": round(build_s, 2),
        "run_s": round(elapsed, 2),
        "peak_rss_mib": round(peak_kib / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("file", "kafka", "memory"))
    parser.add_argument("--citizens", type=int)
    parser.add_argument("--merchants", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baseline", type=int, default=200_000, help="messages for the raw Kafka baseline")
    args = parser.parse_args()
    defaults = {"file": (100_000, 5), "kafka": (50_000, 4), "memory": (1_000_000, 1)}[args.mode]
    args.citizens = args.citizens or defaults[0]
    args.days = args.days or defaults[1]
    args.merchants = args.merchants or args.citizens // 10
    if args.mode == "file":
        result = bench_file(args)
    elif args.mode == "kafka":
        result = asyncio.run(bench_kafka(args))
    else:
        result = bench_memory(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
