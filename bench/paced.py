"""Paced load for bench/ledger.py: payments sent at a fixed rate, and their outcomes timed.

The paced test asks how fast the ledger answers at half the rate it can drain, so the bench's own
client must not take the other half of the machine. Sender and reader are librdkafka clients
(confluent-kafka) on their own threads, and every payment's JSON is built before the clock starts:
sending one is a time stamp spliced into prepared bytes and one `produce` call. (The aiokafka
client with JSON built per send used about a quarter of a core at 4,000 payments/s here; this one,
sender and reader together, about a fifth.) The reader asks librdkafka for what is ready every
2 ms: its `consume` waits its whole timeout unless a full batch is ready, which at a 100 ms timeout
added about 50 ms to every latency.

Latency = the outcome readable by the reader − the payment's `occurred_at`, which the sender stamps
when it hands the payment to the producer. The sender keeps to its schedule (tick by tick, 10 ms) and
reports the rate it reached, so a sender that fell behind shows. The first payment is sent alone
and acknowledged before the clock starts (connecting and the idempotent producer's id took about a
second, which the first payments queued behind it used to count as the ledger's).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from infra import kafka_clients
from infra.settings import Settings

TICK_S: Final = 0.01
STAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width: 27 characters
PLACEHOLDER: Final = b"0000-00-00T00:00:00.000000Z"  # `occurred_at` until the payment is sent
READ_BATCH_MAX: Final = 1_000  # outcomes taken from librdkafka at once
READ_POLL_S: Final = 0.002  # librdkafka's consume waits this long unless READ_BATCH_MAX are ready: keep it short
FLUSH_WAIT_S: Final = 60.0
IN_FLIGHT_MAX: Final = 200_000  # librdkafka's local queue; the sender never waits on it at these rates


@dataclass
class Timings:
    """What the reader saw: latencies of payments (ms) and how many outcomes in all."""

    expected: int
    latencies_ms: list[float] = field(default_factory=list)
    relayed_ms: list[float] = field(default_factory=list)  # to the outcome's timestamp (set as the relay sends it)
    seen: int = 0
    error: str | None = None


def stamped(value: bytes) -> bytes:
    """`value` (a payment built with `PLACEHOLDER` as its time) stamped with the current time."""
    return value.replace(PLACEHOLDER, datetime.now(UTC).strftime(STAMP_FORMAT).encode(), 1)


def send_paced(config: Settings, topic: str, payments: list[tuple[bytes, bytes]], per_tick: int) -> float:
    """Sends `per_tick` payments every tick, each stamped as it is handed over; returns the rate reached."""
    producer = Producer(
        kafka_clients.librdkafka_config(config, "admin")
        | {"acks": "all", "enable.idempotence": True, "linger.ms": 2, "queue.buffering.max.messages": IN_FLIGHT_MAX}
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    # The first payment goes alone and is acknowledged before the clock starts: connecting and
    # getting the idempotent producer's id take a while, and payments queued meanwhile would count it.
    producer.produce(topic, stamped(payments[0][1]), payments[0][0], on_delivery=delivered)
    if producer.flush(FLUSH_WAIT_S) or failures:
        raise RuntimeError(f"paced sender: the first payment was not acknowledged ({failures[:1]})")
    started = time.monotonic()
    for tick, first in enumerate(range(1, len(payments), per_tick)):
        time.sleep(max(0.0, started + tick * TICK_S - time.monotonic()))
        for key, value in payments[first : first + per_tick]:
            producer.produce(topic, stamped(value), key, on_delivery=delivered)
        producer.poll(0)
    reached = (len(payments) - 1) / (time.monotonic() - started)
    if producer.flush(FLUSH_WAIT_S) or failures:
        raise RuntimeError(f"paced sender: {len(failures)} payments refused by Kafka ({failures[:1]}) or unsent")
    return reached


def read_outcomes(config: Settings, topic: str, timings: Timings, deadline: float) -> None:
    """Reads the outcomes topic from its start until `timings.expected` arrived or the deadline passed."""
    consumer = Consumer(
        kafka_clients.librdkafka_config(config, "admin")
        | {"group.id": f"bench-paced-{time.monotonic_ns()}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while timings.seen < timings.expected:
            if time.monotonic() > deadline:
                timings.error = f"{timings.seen} of {timings.expected} outcomes before the deadline"
                return
            messages = consumer.consume(READ_BATCH_MAX, READ_POLL_S)
            now = datetime.now(UTC)
            for message in messages:
                if message.error() is not None:
                    raise KafkaException(message.error())
                timings.seen += 1
                outcome = json.loads(message.value() or b"null")
                if outcome["request_type"] == "payment.requested":  # not the funding cash-in
                    sent = datetime.fromisoformat(outcome["request_occurred_at"])
                    timings.latencies_ms.append((now - sent).total_seconds() * 1000)
                    timings.relayed_ms.append(message.timestamp()[1] - sent.timestamp() * 1000)
    except Exception as error:  # reported by the caller, which owns the run
        timings.error = f"paced reader failed: {error!r}"
    finally:
        consumer.close()
