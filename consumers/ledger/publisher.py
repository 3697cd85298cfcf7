"""Publishes a committed batch's outcomes through librdkafka (confluent-kafka) instead of aiokafka.

aiokafka builds record batches, frames requests and handles responses in Python on the event loop,
the one thread that also parses requests and drives the batch transaction: about an eighth of the
ledger's CPU (bench/RESULTS.md, "Ledger CPU"). Here each outcome is one `produce` call (C, no Python
frame) and librdkafka batches, sends and retries on its own threads, on the other core. Same
durability as before: acks=all, idempotent (no duplicate from librdkafka's own retries), and the same
partitions: librdkafka's `murmur2_random` partitioner is Java's murmur2 of the key, which a keyed
aiokafka `send()` (`outbox.partition_for`) also chooses; computed in C, not in Python per outcome.

A publish is done when `flush` returns with nothing left and no delivery failed; otherwise it raises
`NotPublished` and the relay publishes the whole batch again (at least once: outcome ids are
derived from the decision, so consumers drop the copies). Dead letters, tenant copies and the
backlog stay on aiokafka (few, and with headers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from confluent_kafka import KafkaError, Message, Producer

from consumers.ledger.outbox import APPENDS_PER_TURN, NotPublished
from consumers.ledger.turns import give_way
from infra import kafka_clients
from infra.settings import Settings

log = kafka_clients.librdkafka_logger("kpsandbox.ledger.kafka")

LINGER_MS: Final = 5  # librdkafka waits this long for more records of a partition before sending
DELIVERY_TIMEOUT_MS: Final = 30_000  # a record not acknowledged by then fails (the relay retries the batch)
# A leader cut off the network answers nothing and refuses nothing. librdkafka gives up on a request
# after these (its defaults: 30 s for a produce request, 60 s for any other, 30 s to connect), then
# drops the connection and asks another broker who leads now; the records are sent there. With the
# defaults, outcomes sent to a cut-off leader waited 30 s, and then again whenever the metadata request
# that followed went to the same broker (tests/integration/test_cluster_partition.py).
REQUEST_TIMEOUT_MS: Final = 10_000
FLUSH_WAIT_S_MAX: Final = DELIVERY_TIMEOUT_MS / 1000 + 5  # every record is acknowledged or failed by then
CLOSE_WAIT_S_MAX: Final = 5.0  # at close: what is unacknowledged by then stays in the outbox for the next run
QUEUE_FULL_WAIT_S: Final = 0.05  # librdkafka's queue is full: serve it this long, then produce again
QUEUE_FULL_WAITS_MAX: Final = 1_200  # a minute of full queue is a broker that does not answer
FAILURES_KEPT_MAX: Final = 10  # delivery failures remembered per publish (for the message; all count)


class OutcomePublisher:
    """Owns one librdkafka producer for the outcomes topic; `send_all` is `outbox.send_all`'s twin."""

    def __init__(self, settings: Settings) -> None:
        config: dict[str, Any] = {
            **kafka_clients.librdkafka_config(settings, "ledger"),
            "client.id": "kpsandbox-ledger-outcomes",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": LINGER_MS,
            "partitioner": "murmur2_random",  # Java's (and aiokafka's) murmur2 of the key
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "request.timeout.ms": REQUEST_TIMEOUT_MS,
            "socket.timeout.ms": REQUEST_TIMEOUT_MS,
            "socket.connection.setup.timeout.ms": REQUEST_TIMEOUT_MS,
            # Who leads each partition, asked every 10 s as the aiokafka clients do (librdkafka: 5 min),
            # so outcomes go to a new leader even when nothing sent to the old one has failed yet.
            "topic.metadata.refresh.interval.ms": kafka_clients.METADATA_MAX_AGE_MS,
            "delivery.report.only.error": True,  # no Python callback per acknowledged record
            "on_delivery": self._on_delivery,
            "logger": log,
        }
        self._producer = Producer(config)
        self._failed = 0
        self._failures: list[str] = []

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Called (on the flushing thread) for each record that failed."""
        if error is None:
            return
        self._failed += 1
        if len(self._failures) < FAILURES_KEPT_MAX:
            self._failures.append(f"{message.topic()}[{message.partition()}]: {error.str()}")

    async def send_all(
        self,
        *,
        topic: str,
        keys: list[str],
        payloads: list[bytes],
        turn: Callable[[], Awaitable[None]] = give_way,
    ) -> None:
        """Produces every outcome to its payer's partition (murmur2 of the key) and waits until each
        is acknowledged by every in-sync replica; raises NotPublished when one is not. Every
        APPENDS_PER_TURN records it awaits `turn`."""
        produce = self._producer.produce
        self._failed, self._failures = 0, []
        for index, (key, value) in enumerate(zip(keys, payloads, strict=True)):
            if index and not index % APPENDS_PER_TURN:
                await turn()
            key_bytes = key.encode()
            for _ in range(QUEUE_FULL_WAITS_MAX):
                try:
                    produce(topic, value, key_bytes)
                    break
                except BufferError:  # librdkafka's local queue is full: let it send some
                    await asyncio.to_thread(self._producer.poll, QUEUE_FULL_WAIT_S)
            else:
                waited = QUEUE_FULL_WAITS_MAX * QUEUE_FULL_WAIT_S
                raise NotPublished(f"librdkafka's queue stayed full for {waited:.0f} s")
        left = await asyncio.to_thread(self._producer.flush, FLUSH_WAIT_S_MAX)
        if left or self._failed:
            raise NotPublished(
                f"{self._failed + left} of {len(keys)} outcomes not acknowledged ({left} still queued): "
                + "; ".join(self._failures)
            )

    async def close(self) -> None:
        """Waits (bounded) for what is still queued. A batch not acknowledged keeps its outbox row:
        the next run publishes it (the row is deleted only after a whole batch is acknowledged)."""
        await asyncio.to_thread(self._producer.flush, CLOSE_WAIT_S_MAX)
