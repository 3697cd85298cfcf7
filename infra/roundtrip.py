"""A produce → consume round trip through real Kafka with a committed consumer group.

Used by `kpsandbox smoke` and the integration tests to prove the broker works end to end.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Final

from aiokafka.errors import KafkaConnectionError

from infra import kafka_clients
from infra.kafka_admin import ensure_topic, kafka_unreachable
from infra.settings import Settings

CONSUME_TIMEOUT_S: Final = 30.0
FETCH_TIMEOUT_MS: Final = 500


@dataclass(frozen=True)
class RoundTrip:
    """What came back, and the group's committed offsets afterwards."""

    sent: int
    received: int
    matched: bool
    committed_offset_total: int
    seconds: float


async def round_trip(settings: Settings, topic: str, payloads: list[bytes], group_id: str) -> RoundTrip:
    """Produces payloads (acks=all, idempotent), consumes them back in group_id and commits."""
    began = time.monotonic()
    await ensure_topic(settings, topic, partitions=1)
    producer = kafka_clients.producer(settings, "admin", acks="all", enable_idempotence=True)
    try:
        await producer.start()
    except KafkaConnectionError as error:
        await producer.stop()
        raise kafka_unreachable(settings) from error
    marker = uuid.uuid4().hex.encode()
    try:
        for payload in payloads:
            await producer.send(topic, payload, key=marker)
        await producer.flush()
    finally:
        await producer.stop()
    received = await _consume_marked(settings, topic, group_id, marker, len(payloads))
    committed = await _committed_total(settings, topic, group_id)
    return RoundTrip(
        sent=len(payloads),
        received=len(received),
        matched=received == payloads,
        committed_offset_total=committed,
        seconds=time.monotonic() - began,
    )


async def _consume_marked(settings: Settings, topic: str, group_id: str, marker: bytes, expected: int) -> list[bytes]:
    consumer = kafka_clients.consumer(
        settings,
        "admin",
        topic,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[bytes] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(received) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
            for records in batches.values():
                received.extend(r.value for r in records if r.key == marker and r.value is not None)
            await consumer.commit()
    finally:
        await consumer.stop()
    return received


async def _committed_total(settings: Settings, topic: str, group_id: str) -> int:
    """Sum of the group's committed offsets on topic, as the group coordinator reports them."""
    admin = kafka_clients.admin(settings, "admin")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
