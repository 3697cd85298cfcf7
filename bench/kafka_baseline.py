"""Raw aiokafka produce → consume of payment-shaped JSON on the local broker (acks=all).

This is the denominator later benchmarks divide by: the fastest a plain aiokafka client moves
payment-sized messages through this broker on this machine.

    .venv/bin/python bench/kafka_baseline.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Final

from infra import kafka_clients
from infra.kafka_admin import delete_topics, ensure_topic
from infra.settings import Settings, load_settings

IN_FLIGHT_MAX: Final = 20_000  # sends awaited in chunks of this many
PARTITIONS: Final = 6
FETCH_TIMEOUT_MS: Final = 1_000
CONSUME_IDLE_LIMIT: Final = 10  # empty fetches in a row before giving up


@dataclass(frozen=True)
class BaselineResult:
    """Messages per second each way, and the message size used."""

    messages: int
    payload_bytes: int
    produce_msgs_per_s: float
    consume_msgs_per_s: float


def payment_payloads(count: int) -> list[bytes]:
    """Payment-shaped JSON (~400 bytes), as the contract's payment.requested looks on the wire."""
    template = {
        "schema_version": 1,
        "event_type": "payment.requested",
        "occurred_at": "2026-01-01T08:00:00Z",
        "producer": "bench",
        "kind": "p2m_static_qr",
        "rail": "raast",
        "currency": "PKR",
        "pending": False,
        "timeout_seconds": 0,
        "order_id": None,
        "reference": None,
    }
    out = []
    for i in range(count):
        body = dict(template, event_id=str(uuid.UUID(int=i + 1)), correlation_id=str(uuid.UUID(int=i + 1)))
        body.update(payer_account_id=f"acc_{i % 50_000:016x}", payee_account_id=f"acc_{(i * 7) % 5_000:016x}")
        body["amount"] = 1_000 + (i * 37) % 500_000
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


async def measure(settings: Settings, topic: str, messages: int) -> BaselineResult:
    """Produces `messages` payloads with acks=all to a fresh topic, then consumes them all back."""
    await ensure_topic(settings, topic, PARTITIONS)
    payloads = payment_payloads(messages)
    keys = [p[p.index(b"acc_") : p.index(b"acc_") + 20] for p in payloads]
    producer = kafka_clients.producer(
        settings, "admin", acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256_000
    )
    await producer.start()
    began = time.perf_counter()
    try:
        for start in range(0, messages, IN_FLIGHT_MAX):
            futures = [
                await producer.send(topic, payloads[i], key=keys[i])
                for i in range(start, min(start + IN_FLIGHT_MAX, messages))
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - began
    consume_s = await _consume_all(settings, topic, messages)
    await delete_topics(settings, [topic])
    return BaselineResult(messages, max(map(len, payloads)), messages / produce_s, messages / consume_s)


async def _consume_all(settings: Settings, topic: str, expected: int) -> float:
    consumer = kafka_clients.consumer(
        settings,
        "admin",
        topic,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = idle = 0
    began = None
    try:
        while seen < expected and idle < CONSUME_IDLE_LIMIT:
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=10_000)
            count = sum(len(records) for records in batches.values())
            if count and began is None:
                began = time.perf_counter()
            seen += count
            idle = 0 if count else idle + 1
        await consumer.commit()
    finally:
        await consumer.stop()
    if seen < expected:
        raise RuntimeError(f"consumed {seen} of {expected} messages")
    return time.perf_counter() - (began or time.perf_counter())


def main() -> None:
    """Runs the baseline and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    settings = load_settings()
    topic = f"{settings.topic_prefix}bench.baseline.{uuid.uuid4().hex[:6]}"
    result = asyncio.run(measure(settings, topic, args.messages))
    print(
        json.dumps(
            {
                "benchmark": "kafka_baseline",
                "messages": result.messages,
                "payload_bytes_max": result.payload_bytes,
                "produce_msgs_per_s": round(result.produce_msgs_per_s),
                "consume_msgs_per_s": round(result.consume_msgs_per_s),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
