"""The outbox relay: outcomes and dead letters committed with the postings are published, then
their row deleted.

At least once: a crash after the send and before the delete publishes the batch again on
restart. Outcome ids are derived from the decision, so downstream consumers drop the copy.

The relay is supervised: a failed publish is retried with a bounded backoff while the settler
waits (the queue is bounded, so consumption stops — the outbox never grows past
`PUBLISH_QUEUE_BATCHES_MAX` + 1 rows); when it cannot recover it fails, and the settler fails with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from consumers.ledger import sql
from consumers.ledger.blobs import unpack_payloads
from consumers.ledger.deadletter import Letter, letters_from_json
from consumers.ledger.turns import give_way
from infra.errors import SandboxError

log = logging.getLogger(__name__)

# The database is away (restart, failover) or two transactions collided: try again later.
DB_TRANSIENT: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.InternalClientError,  # a connection lost mid-transaction cannot even roll back
    asyncpg.InsufficientResourcesError,  # too many connections, disk full: may clear
)

APPENDS_PER_TURN: Final = 500  # outcomes added to producer batches between two turns of the event loop
PUBLISH_QUEUE_BATCHES_MAX: Final = 4  # committed batches waiting to be published (backpressure)
SETTLER_FIRST_WAIT_S: Final = 0.05  # the longest a committed batch waits for the settler's next one to begin
BACKLOG_ROWS_MAX: Final = 50  # outbox rows relayed per backlog transaction
BACKLOG_ROUNDS_MAX: Final = 1_000  # bounds one backlog drain (50,000 batches)
RELAY_ATTEMPTS_MAX: Final = 40  # publishing one batch: ~2 minutes of backoff, then the process fails
RELAY_BACKOFF_S: Final = 0.1
RELAY_BACKOFF_MAX_S: Final = 5.0


_PARTITIONER: Final = DefaultPartitioner()
PARTITION_CACHE_KEYS_MAX: Final = 200_000  # murmur2 in pure Python is costly; payers repeat
_partition_cache: dict[tuple[bytes, int], int] = {}


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition a keyed send() would choose (murmur2), memoised with a bounded cache."""
    cache_key = (key, len(partitions))
    partition = _partition_cache.get(cache_key)
    if partition is None:
        if len(_partition_cache) >= PARTITION_CACHE_KEYS_MAX:
            _partition_cache.clear()
        partition = _partition_cache[cache_key] = _PARTITIONER(key, partitions, partitions)
    return partition


async def send_letters(producer: AIOKafkaProducer, *, topic: str, letters: list[Letter]) -> None:
    """Sends dead letters with their original keys and headers (and a tenant's outcome copies to its
    own topic); waits for every acknowledgement."""
    futures = [
        await producer.send(letter.topic or topic, value=letter.value, key=letter.key, headers=list(letter.headers))
        for letter in letters
    ]
    await asyncio.gather(*futures)


async def send_all(
    producer: AIOKafkaProducer,
    *,
    topic: str,
    keys: list[str],
    payloads: list[bytes],
    turn: Callable[[], Awaitable[None]] = give_way,
) -> None:
    """Sends messages in per-partition batches and waits until Kafka acknowledged all (acks=all).

    Partitions are chosen exactly as a keyed `send()` would (murmur2 of the key), so one payer's
    outcomes stay on one partition; whole batches avoid aiokafka's per-message send overhead. Each
    batch is closed before it is handed over: aiokafka holds an open batch for the producer's
    linger, waiting for records that will never come (5 ms more for every outcome). Every
    APPENDS_PER_TURN messages it awaits `turn` (by default `turns.give_way`).
    """
    partitions = sorted(await producer.partitions_for(topic))
    batches: dict[int, BatchBuilder] = {}
    futures = []
    for index, (key, value) in enumerate(zip(keys, payloads, strict=True)):
        if index and not index % APPENDS_PER_TURN:
            await turn()  # the batch being settled gets its turn (its statements wait on this)
        key_bytes = key.encode()
        partition = partition_for(key_bytes, partitions)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key_bytes, value=value, timestamp=None) is None:  # full: ship it, start anew
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key_bytes, value=value, timestamp=None)
    for partition, batch in batches.items():
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)


class Committed(NamedTuple):
    """One committed batch's outbox row, as the relay publishes it."""

    outbox_id: int
    keys: list[str]
    payloads: list[bytes]
    letters: list[Letter]


Then = Callable[[], Awaitable[None]]


class NotPublished(Exception):
    """Some outcomes of a batch were not acknowledged: the relay publishes the batch again."""


class OutcomeSender(Protocol):
    """What publishes a batch's outcomes (consumers/ledger/publisher.py); raises NotPublished."""

    async def send_all(
        self,
        *,
        topic: str,
        keys: list[str],
        payloads: list[bytes],
        turn: Callable[[], Awaitable[None]],
    ) -> None: ...

    async def close(self) -> None: ...


class OutcomeRelay:
    """Publishes committed outbox rows (outcomes, dead letters) and clears them; one worker task."""

    def __init__(
        self,
        *,
        producer: AIOKafkaProducer,
        pool: asyncpg.Pool,
        topic: str,
        dead_letter_topic: str,
        on_retry: Callable[[], None] = lambda: None,
        outcomes: OutcomeSender | None = None,
    ) -> None:
        self.producer = producer
        self.outcomes = outcomes  # publishes outcomes when given (librdkafka: publisher.py), else `send_all`
        self.pool = pool
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.on_retry = on_retry
        self._queue: asyncio.Queue[tuple[Committed, Then]] = asyncio.Queue(maxsize=PUBLISH_QUEUE_BATCHES_MAX)
        self._worker: asyncio.Task[None] | None = None
        # Cleared when a batch is committed, set when the settler has begun its next one (or has
        # none): between two transactions the settler's work comes first, the relay's after.
        self._settler_first = asyncio.Event()
        self._settler_first.set()

    def start(self) -> None:
        """Starts the worker that publishes submitted batches in commit order."""
        self._worker = asyncio.create_task(self._work(), name="outbox-relay")

    async def stop(self) -> None:
        """Cancels the worker (rows it did not publish stay in the outbox for the next run)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self.outcomes is not None:
            await self.outcomes.close()

    def check(self) -> None:
        """Raises the worker's failure, if it failed: the settler must not go on without it."""
        worker = self._worker
        if worker is not None and worker.done() and not worker.cancelled():
            error = worker.exception()
            if error is not None:
                raise error
            raise SandboxError("the outcome relay stopped unexpectedly", "run `kpsandbox settle` again")

    async def submit(self, committed: Committed, *, then: Then) -> None:
        """Queues a committed batch (waits while the queue is full); `then` runs once it is published.

        The relay publishes it once the settler says `go` (it has begun its next batch, whose
        statements then run in PostgreSQL while this publishes), or after SETTLER_FIRST_WAIT_S.
        With room in the queue this returns without a turn of the event loop."""
        assert self._worker is not None, "start() the relay first"
        self.check()
        self._settler_first.clear()
        if not self._queue.full():
            self._queue.put_nowait((committed, then))
            return
        await self._until_worker_or(self._queue.put((committed, then)))

    def go(self) -> None:
        """The settler has begun its next batch, or has none to begin: publishing goes on."""
        self._settler_first.set()

    async def drain(self) -> None:
        """Waits until every queued batch has been published."""
        self.go()
        await self._until_worker_or(self._queue.join())

    async def _until_worker_or(self, waiting: Awaitable[None]) -> None:
        task = asyncio.ensure_future(waiting)
        assert self._worker is not None, "start() the relay first"
        await asyncio.wait({task, self._worker}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            self.check()
            raise SandboxError("the outcome relay stopped unexpectedly", "run `kpsandbox settle` again")

    async def _work(self) -> None:
        while True:
            committed, then = await self._queue.get()
            try:
                await self._after_settler()
                await self.publish_with_retries(committed)
                await then()
            finally:
                self._queue.task_done()

    async def _after_settler(self) -> None:
        """A turn of the event loop, then, if the settler is between two batches (it committed one
        meanwhile), a wait until it has begun the next (bounded: a settler that never says `go`
        delays publishing, never stops it)."""
        await give_way()
        if self._settler_first.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLER_FIRST_WAIT_S):
                await self._settler_first.wait()

    async def publish_with_retries(self, committed: Committed) -> None:
        """Publishes one row, retrying with a bounded backoff; fails loudly when Kafka or PostgreSQL stay away."""
        wait_s = RELAY_BACKOFF_S
        for attempt in range(1, RELAY_ATTEMPTS_MAX + 1):
            try:
                await self.publish(committed)
                return
            except (*DB_TRANSIENT, KafkaError, NotPublished) as error:
                log.warning(
                    "outbox row %s not published (%s/%s): %s", committed.outbox_id, attempt, RELAY_ATTEMPTS_MAX, error
                )
                self.on_retry()
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, RELAY_BACKOFF_MAX_S)
        raise SandboxError(
            f"outcomes of outbox row {committed.outbox_id} could not be published after {RELAY_ATTEMPTS_MAX} attempts",
            "check Kafka and PostgreSQL (`kpsandbox status`), then run `kpsandbox settle` again: "
            "the outbox keeps every unpublished outcome",
        )

    async def publish(self, committed: Committed) -> None:
        """Publishes one committed row's outcomes and dead letters, then deletes the row."""
        if committed.keys and self.outcomes is not None:
            await self.outcomes.send_all(
                topic=self.topic,
                keys=committed.keys,
                payloads=committed.payloads,
                turn=self._after_settler,
            )
        elif committed.keys:
            await send_all(
                self.producer,
                topic=self.topic,
                keys=committed.keys,
                payloads=committed.payloads,
                turn=self._after_settler,
            )
        if committed.letters:
            await send_letters(self.producer, topic=self.dead_letter_topic, letters=committed.letters)
        async with self.pool.acquire() as connection:
            await connection.execute(sql.DELETE_OUTBOX, committed.outbox_id)

    async def relay_backlog(self, *, older_than_s: float) -> int:
        """Publishes rows a process left behind (it died after its commit); returns rows relayed."""
        relayed = 0
        for _ in range(BACKLOG_ROUNDS_MAX):
            async with self.pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(sql.LOCK_OUTBOX_BACKLOG, older_than_s, BACKLOG_ROWS_MAX)
                for row in rows:
                    keys = row["keys"].split("\n") if row["keys"] else []
                    payloads = unpack_payloads(row["payloads"], row["payloads_bytes"])
                    if keys:
                        await send_all(self.producer, topic=self.topic, keys=keys, payloads=payloads)
                    letters = letters_from_json(row["dead_letters"])
                    if letters:
                        await send_letters(self.producer, topic=self.dead_letter_topic, letters=letters)
                    await connection.execute(sql.DELETE_OUTBOX, row["id"])
            relayed += len(rows)
            if len(rows) < BACKLOG_ROWS_MAX:
                break
        return relayed

    async def depth(self) -> tuple[int, float]:
        """(rows waiting in the outbox, age of the oldest in seconds)."""
        async with self.pool.acquire() as connection:
            row = await connection.fetchrow(sql.OUTBOX_DEPTH)
        return int(row["rows"]), float(row["oldest_age_s"])
