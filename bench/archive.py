"""Archive and replay speed against raw aiokafka on the same topics, in the same run.

Simulates a run onto fresh topics (its own prefix), then measures in turn:
  raw consume   — a plain aiokafka consumer reading every catalog topic to its end offsets (timed
                  from its start(), i.e. connecting, as the archive is timed from connecting);
  archive       — `kpsandbox archive` of the same topics (read, parse, Parquet, manifest);
  raw produce   — a plain aiokafka producer (acks=all, idempotent) sending the same records;
  replay        — `kpsandbox replay --from-archive --speed 0` of the archive into a new prefix.
Targets (issue 11): archive ≥ 0.5 × raw consume, replay ≥ 0.5 × raw produce. Each archive figure
also gives the CPU seconds (this process, all threads) of the raw consume and of the archive:
steadier than wall time on a busy machine, and what the archive would need on more cores.

With `--rounds N` the raw consume + archive pair is repeated N times in this process. With
`--fresh-processes` each raw consume and each archive of N more rounds also runs in a process of its
own, as `kpsandbox archive` and a researcher's own consumer script run (each timed from connecting;
imports are not timed); both sets of figures are printed, side by side.

    .venv/bin/python bench/archive.py [--days 30] [--citizens 3000] [--merchants 300] [--rounds 1] [--fresh-processes]

The default run has 93,389 records; `--days 180 --citizens 1500 --merchants 150` is `make demo`'s
run (279,268 records in 555 part files: there the files' fixed costs weigh more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

from aiokafka import TopicPartition

from consumers.archive.archiver import Archiver
from infra import kafka_clients
from infra.kafka_admin import delete_topics, end_offsets, ensure_topics
from infra.settings import Settings, load_settings, with_overrides
from producers.replay.filters import ReplayFilter
from producers.replay.replayer import replay
from producers.replay.sources import ArchiveSource
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka
from schemas.topics import CATALOG

CHILD_WAIT_S_MAX: Final = 300  # one raw consume or archive in its own process
FETCH_TIMEOUT_MS: Final = 500
IDLE_FETCHES_MAX: Final = 20
SEND_CHUNK: Final = 20_000  # raw produce: futures awaited in chunks of this many


def cpu_s() -> float:
    """CPU seconds of this process so far, every thread (librdkafka's and Arrow's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def simulate(config: Settings, days: int, citizens: int, merchants: int) -> int:
    """Produces one simulated run onto the prefix's topics; returns the number of events."""
    await ensure_topics(config)
    sim = Simulation(
        SimulationConfig(
            seed=7, days=days, citizens=citizens, merchants=merchants, scenario=load_scenario("digital-kp")
        )
    )
    sink = KafkaSink(config)
    await sink.start()
    try:
        return await produce_kafka(sim, sink)
    finally:
        await sink.close()


async def raw_consume(config: Settings, *, keep: bool = False) -> tuple[int, float, list]:
    """Reads every catalog topic to its end offsets with plain aiokafka; (records, seconds, the records
    if `keep`). The timed reads keep nothing: holding every record would make the baseline's garbage
    collections walk a growing list, slowing it more the larger the run."""
    ends = await end_offsets(config, [config.topic(spec) for spec in CATALOG])
    wanted = {TopicPartition(t, p): end for (t, p), end in ends.items() if end > 0}
    consumer = kafka_clients.consumer(
        config,
        "researcher",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    began, idle, count = time.perf_counter(), 0, 0  # from connecting, as the archive's figure is
    await consumer.start()
    kept: list = []
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        while count < sum(wanted.values()) and idle < IDLE_FETCHES_MAX:
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                count += len(records)
                if keep:
                    kept.extend(records)
        seconds = time.perf_counter() - began
    finally:
        await consumer.stop()
    return count, seconds, kept


async def raw_produce(config: Settings, records: list[tuple[str, int, bytes, bytes]]) -> float:
    """Sends the records to the same partitions of a new prefix with plain aiokafka; seconds."""
    await ensure_topics(config)
    names = {spec.name: config.topic(spec) for spec in CATALOG}
    producer = kafka_clients.producer(
        config,
        "researcher",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        began = time.perf_counter()
        for start in range(0, len(records), SEND_CHUNK):
            futures = []
            for name, partition, key, value in records[start : start + SEND_CHUNK]:
                futures.append(await producer.send(names[name], value, key=key, partition=partition))
            await asyncio.gather(*futures)
        return time.perf_counter() - began
    finally:
        await producer.stop()


async def archive_rounds(source: Settings, rounds: int, kept: Path) -> list[dict]:
    """Raw consume then archive of the same topics, `rounds` times in a row (the raw figure moves a
    lot from run to run here, so each archive figure is paired with the raw one just before it).
    Every round's archive stays in `kept` until the benchmark ends: see `main_async`."""
    found = []
    for round_number in range(rounds):
        cpu_began = cpu_s()
        consumed, consume_s, _ = await raw_consume(source)
        consume_cpu = cpu_s() - cpu_began
        began, cpu_began = time.perf_counter(), cpu_s()
        summary = await Archiver(source, kept / f"round-{round_number + 2}").run()
        archive_s, archive_cpu = time.perf_counter() - began, cpu_s() - cpu_began
        raw, archived = consumed / consume_s, summary.rows_new / archive_s
        found.append(
            {
                "raw_consume_per_s": round(raw),
                "archive_per_s": round(archived),
                "ratio": round(archived / raw, 2),
                "raw_consume_cpu_s": round(consume_cpu, 2),
                "archive_cpu_s": round(archive_cpu, 2),
            }
        )
    return found


async def child(kind: str, prefix: str, out: Path | None) -> dict:
    """One raw consume or one archive of the prefix's topics, in this (fresh) process: records, seconds, CPU."""
    source = with_overrides(load_settings(), topic_prefix=prefix)
    cpu_began = cpu_s()
    if kind == "raw":
        records, seconds, _ = await raw_consume(source)
    else:
        began = time.perf_counter()
        records = (await Archiver(source, out or Path(tempfile.mkdtemp())).run()).rows_new
        seconds = time.perf_counter() - began
    return {"records": records, "seconds": seconds, "cpu_s": cpu_s() - cpu_began}


def in_child(kind: str, prefix: str, out: Path | None = None) -> dict:
    """`child` run by a new Python process (this script with --child); its figures."""
    command = [sys.executable, __file__, "--child", kind, "--prefix", prefix, *(["--out", str(out)] if out else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_WAIT_S_MAX, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} in its own process failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_rounds(source: Settings, rounds: int, kept: Path) -> list[dict]:
    """Raw consume then archive, each in a process of its own, `rounds` times in a row."""
    found = []
    for round_number in range(rounds):
        raw = in_child("raw", source.topic_prefix)
        archived = in_child("archive", source.topic_prefix, kept / f"fresh-{round_number + 1}")
        raw_per_s, archive_per_s = raw["records"] / raw["seconds"], archived["records"] / archived["seconds"]
        found.append(
            {
                "raw_consume_per_s": round(raw_per_s),
                "archive_per_s": round(archive_per_s),
                "ratio": round(archive_per_s / raw_per_s, 2),
                "raw_consume_cpu_s": round(raw["cpu_s"], 2),
                "archive_cpu_s": round(archived["cpu_s"], 2),
            }
        )
    return found


async def main_async(days: int, citizens: int, merchants: int, rounds: int, fresh: bool = False) -> dict:
    base = load_settings()
    run = uuid.uuid4().hex[:6]
    source = with_overrides(base, topic_prefix=f"bench{run}.")
    events = await simulate(source, days, citizens, merchants)
    cpu_began = cpu_s()
    consumed, consume_s, _ = await raw_consume(source)
    consume_cpu = cpu_s() - cpu_began
    # Every archive stays on disk until the end: deleting one right before the next is written made
    # that one pay for the deletion (ext4 without a journal, as here, skips each inode deleted in the
    # last 60 s while it looks for a free one: bench/RESULTS.md, "Archive and replay").
    with tempfile.TemporaryDirectory() as folder:
        kept = Path(folder)
        began, cpu_began = time.perf_counter(), cpu_s()  # from connecting (inside run) to the last manifest
        summary = await Archiver(source, kept / "round-1").run()
        archive_s, archive_cpu = time.perf_counter() - began, cpu_s() - cpu_began
        catalog = {source.topic(spec): spec.name for spec in CATALOG}
        _, _, records = await raw_consume(source, keep=True)  # untimed: what the raw producer sends
        stripped = [(catalog[r.topic], r.partition, r.key, r.value) for r in records]
        del records
        produce_s = await raw_produce(with_overrides(base, topic_prefix=f"bench{run}raw."), stripped)
        target = with_overrides(base, topic_prefix=f"bench{run}rep.")
        replayed = await replay(ArchiveSource(kept / "round-1"), target, ReplayFilter())
        more = await archive_rounds(source, rounds - 1, kept) if rounds > 1 else []
        separate = await asyncio.to_thread(fresh_rounds, source, rounds, kept) if fresh else []
    prefixes = (source, with_overrides(base, topic_prefix=f"bench{run}raw."), target)
    for config in prefixes:
        await delete_topics(config, [config.topic(spec) for spec in CATALOG])
    result = {
        "events": events,
        "records": consumed,
        "raw_consume_per_s": round(consumed / consume_s),
        "archive_per_s": round(summary.rows_new / archive_s),
        "raw_consume_cpu_s": round(consume_cpu, 2),
        "archive_cpu_s": round(archive_cpu, 2),
        "raw_produce_per_s": round(consumed / produce_s),
        "replay_per_s": round(replayed.sent / replayed.seconds),
    }
    result["archive_ratio"] = round(result["archive_per_s"] / result["raw_consume_per_s"], 2)
    result["replay_ratio"] = round(result["replay_per_s"] / result["raw_produce_per_s"], 2)
    if more:
        result["more_archive_rounds"] = more
        ratios = [result["archive_ratio"], *(found["ratio"] for found in more)]
        result["archive_ratio_median"] = round(statistics.median(ratios), 2)  # single rounds move a lot here
    if separate:
        result["fresh_process_rounds"] = separate
        result["archive_ratio_median_fresh_processes"] = round(statistics.median(r["ratio"] for r in separate), 2)
    return result


def main() -> None:
    """Runs the benchmark and prints its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--citizens", type=int, default=3_000)
    parser.add_argument("--merchants", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="raw consume + archive rounds on the same topics")
    parser.add_argument(
        "--fresh-processes", action="store_true", help="also measure each round's two sides in processes of their own"
    )
    parser.add_argument("--child", choices=["raw", "archive"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.prefix, args.out))))
        return
    print(
        json.dumps(
            {
                "benchmark": "archive",
                **asyncio.run(
                    main_async(args.days, args.citizens, args.merchants, max(1, args.rounds), args.fresh_processes)
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
