"""Where simulated events go: a JSON Lines file, or Kafka through the idempotent producer.

Both sinks receive the same wire bytes in the same order, so a file run and a Kafka run of one
seed carry identical payloads (Kafka: in the same per-partition order, since the partition is
chosen from the key with Kafka's own murmur2 partitioner and batches of one partition are sent
in order by an idempotent producer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable, topic_missing
from infra.settings import Settings
from producers.batches import AccountsFirstBatches
from producers.sim.engine import Simulation
from producers.sim.records import Record
from schemas.topics import ACCOUNTS, CASH, ORDERS, PAYMENT_REQUESTS

FILE_CHUNK_LINES: Final = 4_096
KAFKA_CONNECT_TIMEOUT_S: Final = 10.0
KAFKA_BATCH_BYTES_MAX: Final = 512 * 1024
KAFKA_IN_FLIGHT_BATCHES_MAX: Final = 64
KAFKA_PARTITION_CACHE_MAX: Final = 1_000_000
PROGRESS_EVERY_EVENTS: Final = 10_000
SIM_TOPICS: Final = (ACCOUNTS, PAYMENT_REQUESTS, CASH, ORDERS)

Progress = Callable[[int, int], None]  # (events so far, days completed)


def open_output(path: Path) -> IO[bytes]:
    """Opens the output file for writing, or raises SandboxError saying what to fix."""
    try:
        return path.open("wb")
    except OSError as exc:
        raise SandboxError(
            f"cannot write to {path}: {exc.strerror}",
            "choose a path in an existing folder you can write to (e.g. --out out/events.jsonl)",
        ) from exc


class Pacer:
    """Holds a run to `rate` events per second (None: as fast as it can). Uses the wall clock."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._start = time.monotonic()

    def delay(self, events: int) -> float:
        """Seconds to wait before emitting event number `events`."""
        if not self.rate:
            return 0.0
        return max(0.0, events / self.rate - (time.monotonic() - self._start))


def _chunks(sim: Simulation, progress: Progress | None) -> Iterator[list[Record]]:
    """The run in the simulation's own batches, reporting progress about every
    PROGRESS_EVERY_EVENTS events (after the caller has handled the batch that crossed the mark)."""
    since_report = 0
    for batch in sim.batches():
        if not batch:
            continue
        yield batch
        since_report += len(batch)
        if progress and since_report >= PROGRESS_EVERY_EVENTS:
            since_report = 0
            progress(sim.stats.total_events, len(sim.stats.days))
    if progress:
        progress(sim.stats.total_events, len(sim.stats.days))


def write_file(sim: Simulation, out: IO[bytes], rate: float | None = None, progress: Progress | None = None) -> int:
    """Writes the run as JSON Lines; returns the number of lines. Only whole lines are ever written,
    so an interrupted run leaves a valid file up to its last line."""
    ts, pacer, written = sim.timestamps, Pacer(rate), 0
    step = FILE_CHUNK_LINES if not rate else max(1, min(FILE_CHUNK_LINES, int(rate // 10)))
    for chunk in _chunks(sim, progress):
        for start in range(0, len(chunk), step):
            part = chunk if len(chunk) <= step else chunk[start : start + step]
            wait = pacer.delay(written)
            if wait:
                time.sleep(wait)
            lines = [rec.json(ts) for rec in part]
            lines.append("")  # so the join ends with a newline without copying the text again
            out.write("\n".join(lines).encode())
            written += len(part)
    out.flush()
    return written


class KafkaSink:
    """Produces records with acks=all and idempotence, in bounded batches per partition."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._topic_names = {spec.name: settings.topic(spec) for spec in SIM_TOPICS}
        self._accounts_topic = settings.topic(ACCOUNTS)
        self._batches: AccountsFirstBatches | None = None
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self.sent = 0

    async def start(self) -> None:
        """Connects and learns the partition counts; SandboxError if Kafka or a topic is missing."""
        producer = kafka_clients.producer(
            self.settings,
            "economy",
            client_id="kpsandbox-sim",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=KAFKA_BATCH_BYTES_MAX,
            request_timeout_ms=int(KAFKA_CONNECT_TIMEOUT_S * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), KAFKA_CONNECT_TIMEOUT_S)
        except (TimeoutError, KafkaError, OSError) as exc:
            await producer.stop()
            raise kafka_unreachable(self.settings) from exc
        self._producer = producer
        self._batches = AccountsFirstBatches(
            producer, accounts_topic=self._accounts_topic, in_flight_max=KAFKA_IN_FLIGHT_BATCHES_MAX
        )
        for name in self._topic_names.values():
            try:
                partitions = await asyncio.wait_for(producer.partitions_for(name), KAFKA_CONNECT_TIMEOUT_S)
            except (TimeoutError, KafkaError) as exc:
                await self.close()
                raise topic_missing(self.settings, name, "`kpsandbox topics create`") from exc
            self._partitions[name] = len(partitions)

    async def send(self, rec: Record, value: bytes) -> None:
        """Appends one event to its partition's batch; sends the batch when full."""
        batches = self._batches
        assert batches is not None, "start() first"
        topic = self._topic_names[rec.topic.name]
        key = rec.key.encode()
        cache_key = (topic, key)
        partition = self._partition_of.get(cache_key)
        if partition is None:
            # Kafka's default partitioner (murmur2 of the key), as a keyed send() would choose.
            partition = (murmur2(key) & 0x7FFFFFFF) % self._partitions[topic]
            if len(self._partition_of) >= KAFKA_PARTITION_CACHE_MAX:
                self._partition_of.clear()
            self._partition_of[cache_key] = partition
        await batches.append(topic, partition, key, value)
        self.sent += 1

    async def flush(self) -> None:
        """Sends every partial batch (accounts first, then in partition order); waits for every ack."""
        if self._batches is not None:
            await self._batches.flush()

    async def close(self) -> None:
        """Flushes and disconnects; safe to call twice."""
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            producer, self._producer = self._producer, None
            await producer.stop()


async def produce_kafka(
    sim: Simulation, sink: KafkaSink, rate: float | None = None, progress: Progress | None = None
) -> int:
    """Produces the run to a started sink; returns the number of events. The caller closes it."""
    ts, pacer = sim.timestamps, Pacer(rate)
    for chunk in _chunks(sim, progress):
        for rec in chunk:
            if rate:
                wait = pacer.delay(sink.sent)
                if wait:
                    await asyncio.sleep(wait)
            await sink.send(rec, rec.json(ts).encode())
        await asyncio.sleep(0)  # let the sender task drain between chunks
    return sink.sent
