"""Reads a finished run back from Kafka: outcomes by result, and wall-clock settlement latency.

Latency is measured from Kafka's own record timestamps: when the simulation produced the
request, and when the ledger's outbox relay published its outcome. Simulated `occurred_at`
times are not used: they run far ahead of the wall clock.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from aiokafka import TopicPartition

from infra import kafka_clients
from infra.kafka_admin import end_offsets
from infra.settings import Settings
from schemas.topics import PAYMENT_OUTCOMES, PAYMENT_REQUESTS

FETCH_TIMEOUT_MS: Final = 500
READ_TIMEOUT_S: Final = 120.0
EVENT_ID_PREFIX: Final = b'"event_id":"'


@dataclass
class OutcomeTally:
    """Outcomes seen on the topic (deduplicated on event_id) and their latencies."""

    settled: int = 0
    rejected: int = 0
    expired: int = 0  # authorisations that timed out (payment.expired): no request decision, no latency
    duplicates: int = 0
    rejected_by_result: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


async def _read_topic(settings: Settings, topic: str, visit) -> None:  # type: ignore[no-untyped-def]
    """Calls visit(record) for every record from the beginning up to the current end, then stops."""
    ends = {TopicPartition(t, p): end for (t, p), end in (await end_offsets(settings, [topic])).items() if end}
    if not ends:
        return
    consumer = kafka_clients.consumer(settings, "admin", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        remaining = dict(ends)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    visit(record)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()


def _event_id(value: bytes) -> bytes:
    start = value.index(EVENT_ID_PREFIX) + len(EVENT_ID_PREFIX)
    return value[start : start + 36]


async def tally_outcomes(settings: Settings) -> OutcomeTally:
    """Counts settled/rejected outcomes and joins them to their requests' produce timestamps."""
    produced_ms: dict[bytes, int] = {}

    def remember(record) -> None:  # type: ignore[no-untyped-def]
        produced_ms[_event_id(record.value)] = record.timestamp

    await _read_topic(settings, settings.topic(PAYMENT_REQUESTS), remember)
    tally = OutcomeTally()
    seen: set[str] = set()

    def count(record) -> None:  # type: ignore[no-untyped-def]
        outcome = json.loads(record.value)
        if outcome["event_id"] in seen:
            tally.duplicates += 1
            return
        seen.add(outcome["event_id"])
        if outcome["event_type"] == "payment.expired":
            tally.expired += 1
            return
        if outcome["event_type"] == "payment.settled":
            tally.settled += 1
        else:
            tally.rejected += 1
            tally.rejected_by_result[outcome["result"]] += 1
        requested = produced_ms.get(outcome["request_event_id"].encode())
        if requested is not None:
            tally.latencies_ms.append(float(record.timestamp - requested))

    await _read_topic(settings, settings.topic(PAYMENT_OUTCOMES), count)
    return tally
