"""The simulation on a real broker: same payloads in the same per-partition order as a file run."""

from __future__ import annotations

import time
from collections import defaultdict

from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from infra import kafka_clients
from infra.settings import Settings
from producers.batches import AccountsFirstBatches
from producers.sim.engine import Simulation, SimulationConfig
from producers.sinks import SIM_TOPICS, KafkaSink, produce_kafka
from schemas.topics import ACCOUNTS, PAYMENT_REQUESTS

CONSUME_DEADLINE_S = 60
LONG_LINGER_MS = 2_000  # a producer linger no complete batch may wait out


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


async def test_complete_batches_are_sent_without_waiting_out_the_producers_linger(fresh_settings: Settings) -> None:
    """The simulation's and replay's batches are complete when sent (full, or flushed); aiokafka holds
    an open batch for the producer's linger, so each is closed first. An accounts batch, which is
    acknowledged before anything else is sent, would otherwise cost a whole linger every time."""
    producer = kafka_clients.producer(fresh_settings, "admin", acks="all", linger_ms=LONG_LINGER_MS)
    await producer.start()
    try:
        batches = AccountsFirstBatches(producer, accounts_topic=fresh_settings.topic(ACCOUNTS), in_flight_max=4)
        await batches.append(fresh_settings.topic(ACCOUNTS), 0, b"k", b"{}")  # metadata and a first batch
        await batches.flush()
        started = time.monotonic()
        await batches.append(fresh_settings.topic(ACCOUNTS), 0, b"k", b'{"n":1}')
        await batches.append(fresh_settings.topic(PAYMENT_REQUESTS), 0, b"k", b'{"n":2}')
        await batches.flush()  # the accounts batch first and acknowledged, then the request's
        elapsed_ms = (time.monotonic() - started) * 1000
    finally:
        await producer.stop()
    assert elapsed_ms < LONG_LINGER_MS / 2, f"{elapsed_ms:.0f} ms: the batches waited for the linger"
