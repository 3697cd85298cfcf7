"""The simulation on a real broker: same payloads in the same per-partition order as a file run."""

from __future__ import annotations

import time
from collections import defaultdict

from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from infra import kafka_clients
from infra.settings import Settings
from producers.sim.engine import Simulation, SimulationConfig
from producers.sinks import SIM_TOPICS, KafkaSink, produce_kafka

CONSUME_DEADLINE_S = 60


def _config() -> SimulationConfig:
    return SimulationConfig(seed=77, days=6, citizens=2_000, merchants=200)


def _expected(settings: Settings) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    """What each partition must hold, computed from a file-mode run of the same seed."""
    sim = Simulation(_config())
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
    for rec in sim.records():
        key = rec.key.encode()
        partition = (murmur2(key) & 0x7FFFFFFF) % rec.topic.partitions
        by_partition[(settings.topic(rec.topic), partition)].append((key, rec.json(sim.timestamps).encode()))
    return by_partition


async def _consume(settings: Settings, total: int) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    consumer = kafka_clients.consumer(settings, "admin", enable_auto_commit=False)
    await consumer.start()
    got: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
    try:
        parts = [TopicPartition(settings.topic(spec), p) for spec in SIM_TOPICS for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        count = 0
        while count < total and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1_000, max_records=10_000)
            for tp, messages in batches.items():
                for m in messages:
                    got[(tp.topic, tp.partition)].append((m.key, m.value))
                    count += 1
    finally:
        await consumer.stop()
    return got


async def test_kafka_run_matches_file_run_per_partition(fresh_settings: Settings) -> None:
    """Producing a seed to Kafka yields, partition by partition, exactly the file run's payloads in order."""
    expected = _expected(fresh_settings)
    total = sum(len(v) for v in expected.values())
    sim = Simulation(_config())
    sink = KafkaSink(fresh_settings)
    await sink.start()
    try:
        sent = await produce_kafka(sim, sink)
    finally:
        await sink.close()
    assert sent == total
    got = await _consume(fresh_settings, total)
    assert sorted(got) == sorted(expected)
    for tp, messages in expected.items():
        assert got[tp] == messages, tp
