"""The settlement loop: fetch → merge → dead-letter → decide and commit → relay → commit offsets.

Exactly-once effects: the database is the source of truth for what was consumed. Offsets are
written in the same transaction as the postings; on assignment the consumer seeks to them; Kafka
offsets are committed only afterwards (for lag monitoring). Outcomes go through the outbox.

Test hook: KPSANDBOX_LEDGER_CRASH_AT=after_db_commit|after_outcome_publish makes the process
kill itself (exit status 137, no cleanup) at that point of the first batch with requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime
from typing import Final

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from consumers.ledger import repository
from consumers.ledger.accounts import AccountsReader
from consumers.ledger.batch import Batch, PartitionProgress
from consumers.ledger.domain import Request
from consumers.ledger.merge import Item, PartitionMerge
from consumers.ledger.outbox import DB_TRANSIENT, OutcomeRelay, send_all
from consumers.ledger.reading import Poison, read_requests
from consumers.ledger.retries import DB_RETRY_WAIT_S, DB_UNAVAILABLE_ATTEMPTS_MAX, RetryingSettle, RunSummary
from infra.db import database_unreachable, migrate
from infra.kafka_admin import kafka_unreachable
from infra.settings import Settings
from schemas.topics import ACCOUNTS, DEAD_LETTER, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

log = logging.getLogger(__name__)

GROUP_DEFAULT: Final = "kp-ledger"
BATCH_SIZE_MAX: Final = 4_000
BATCH_WAIT_MS: Final = 20
BUFFERED_PER_PARTITION_MAX: Final = 8_000
IDLE_POLLS: Final = 3  # empty, caught-up polls in a row before --until-idle stops
OUTBOX_BACKLOG_AGE_S: Final = 5.0
SESSION_TIMEOUT_MS: Final = 6_000  # a killed member's partitions move on after this (broker minimum)
CRASH_ENV: Final = "KPSANDBOX_LEDGER_CRASH_AT"


def _crash_hook(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        os._exit(137)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, settler: Settler) -> None:
        self.settler = settler

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        inflight = self.settler._inflight
        if inflight is not None:  # let the batch in flight commit first, so its offsets are final
            await asyncio.wait([inflight])
        for tp in revoked:
            self.settler.forget(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.settler.resume(assigned)


class Settler(RetryingSettle):
    """One ledger consumer process."""

    def __init__(self, settings: Settings, *, group: str = GROUP_DEFAULT) -> None:
        self.settings = settings
        self.group = group
        self.topic = settings.topic(PAYMENT_REQUESTS)
        self.dead_letter_topic = settings.topic(DEAD_LETTER)
        self.merge: PartitionMerge[Request | Poison] = PartitionMerge(
            buffered_per_partition_max=BUFFERED_PER_PARTITION_MAX
        )
        self.positions: dict[int, int] = {}  # partition -> next offset, as the database says
        self.summary = RunSummary()
        self._last_at: dict[int, datetime] = {}
        self._fetched: dict[int, int] = {}  # partition -> next offset to fetch
        self._stopping = asyncio.Event()
        self._inflight: asyncio.Task[None] | None = None
        self._epoch = 0  # bumped by every seek to the database's offsets

    def stop(self) -> None:
        """Asks the loop to finish its current batch and return (SIGTERM, Ctrl-C)."""
        self._stopping.set()

    # -- assignment ------------------------------------------------------------------------
    def forget(self, partition: int) -> None:
        """Drops everything buffered for a partition this process no longer owns."""
        self.merge.drop(partition)
        self.positions.pop(partition, None)
        self._last_at.pop(partition, None)
        self._fetched.pop(partition, None)

    async def resume(self, assigned: list[TopicPartition]) -> None:
        """Seeks newly assigned partitions to where the database says they stand."""
        if not assigned:
            return
        self._epoch += 1  # a batch read before this point must not move the positions set here
        starts = await self.consumer.beginning_offsets(assigned)
        async with self.pool.acquire() as connection:
            stored = await repository.ensure_offsets(
                connection, group=self.group, topic=self.topic, starts={tp.partition: o for tp, o in starts.items()}
            )
        for tp in assigned:
            self.forget(tp.partition)
            self.positions[tp.partition] = stored[tp.partition][0]
            self._fetched[tp.partition] = stored[tp.partition][0]
            self.consumer.seek(tp, stored[tp.partition][0])

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, *, until_idle: bool, batch_size_max: int = BATCH_SIZE_MAX) -> RunSummary:
        """Settles until cancelled (or, with `until_idle`, until every partition is drained)."""
        settings = self.settings
        await migrate(settings.dsn)  # idempotent; a fresh external database needs no separate step
        try:
            self.pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=3)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(settings.dsn) from error
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
        )
        self.accounts = AccountsReader(
            bootstrap=settings.bootstrap_servers,
            topic=settings.topic(ACCOUNTS),
            group=self.group,
            pool=self.pool,
            producer=self.producer,
            dead_letter_topic=self.dead_letter_topic,
        )
        self.relay = OutcomeRelay(producer=self.producer, pool=self.pool, topic=settings.topic(PAYMENT_OUTCOMES))
        try:
            await self.producer.start()
        except (KafkaError, OSError) as error:
            await self.pool.close()
            raise kafka_unreachable(settings) from error
        try:
            await self.accounts.start()
            self.consumer.subscribe([self.topic], listener=_Rebalance(self))
            await self.consumer.start()
            await self.relay.relay_backlog(older_than_s=0)
            worker = asyncio.create_task(self.relay.work())
            try:
                try:
                    await self._loop(until_idle=until_idle, batch_size_max=batch_size_max)
                finally:
                    await self._settled()
                await self.relay.drain()
            finally:
                worker.cancel()
            await self.relay.relay_backlog(older_than_s=0)  # leave nothing unpublished behind
        finally:
            await self.consumer.stop()
            await self.accounts.stop()
            await self.producer.stop()
            await self.pool.close()
        return self.summary

    async def _loop(self, *, until_idle: bool, batch_size_max: int) -> None:
        """Runs steps until stopped; a database or broker outage pauses it, then it resyncs."""
        idle_polls = 0
        failures = 0
        resync = False
        while not self._stopping.is_set():
            try:
                if resync:
                    await self.resume([TopicPartition(self.topic, p) for p in self.positions])
                    resync = False
                idle_polls = await self._step(until_idle=until_idle, batch_size_max=batch_size_max, idle=idle_polls)
                failures = 0
            except (*DB_TRANSIENT, KafkaError) as error:
                failures += 1
                if failures > DB_UNAVAILABLE_ATTEMPTS_MAX:
                    if isinstance(error, KafkaError):
                        raise kafka_unreachable(self.settings) from error
                    raise database_unreachable(self.settings.dsn) from error
                log.warning("settling paused (%s/%s): %s", failures, DB_UNAVAILABLE_ATTEMPTS_MAX, error)
                await asyncio.sleep(DB_RETRY_WAIT_S)
                resync = True  # re-read from what the database says was settled
            if idle_polls >= IDLE_POLLS:
                return

    async def _step(self, *, until_idle: bool, batch_size_max: int, idle: int) -> int:
        """Fetches, and settles what the merge releases; returns the count of idle polls so far."""
        fetched = await self.consumer.getmany(timeout_ms=BATCH_WAIT_MS, max_records=batch_size_max)
        for tp, messages in fetched.items():
            if tp.partition in self.positions:
                self._buffer(tp.partition, messages)
        self._drop_unassigned()
        self._throttle()
        unread = self._unread()
        items = self.merge.take(batch_size_max, unread=unread)
        if items:
            # The next batch is fetched and parsed while this one is in PostgreSQL; two batches
            # never settle at once (the previous one finishes first: positions, locks, order).
            epoch = self._epoch  # items read before a later seek are stale: _settle drops them
            await self._settled()
            self._inflight = asyncio.create_task(self._settle(items, epoch))
            return 0
        await self._settled()
        if until_idle and not fetched and not unread and await self._drained():
            return idle + 1
        if not fetched:
            await self.relay.relay_backlog(older_than_s=OUTBOX_BACKLOG_AGE_S)
        return 0

    def _buffer(self, partition: int, messages: list) -> None:
        last_at = self._last_at.get(partition, datetime.min.replace(tzinfo=UTC))
        items, self._last_at[partition] = read_requests(partition, messages, last_at)
        for item in items:
            self.merge.add(item)
        if items:
            self._fetched[partition] = items[-1].offset + 1

    def _drop_unassigned(self) -> None:
        """Forgets partitions a rebalance took away, even if the revoke callback came late."""
        assigned = {tp.partition for tp in self.consumer.assignment()}
        for partition in [p for p in self.positions if p not in assigned]:
            self.forget(partition)

    def _throttle(self) -> None:
        """Pauses fetching partitions whose buffers are full, so memory stays bounded."""
        for partition in list(self.positions):
            tp = TopicPartition(self.topic, partition)
            if self.merge.full(partition):
                self.consumer.pause(tp)
            elif tp in self.consumer.paused():
                self.consumer.resume(tp)

    def _unread(self) -> set[int]:
        """Assigned partitions whose log end has not been fetched yet."""
        unread = set()
        for partition in self.positions:
            tp = TopicPartition(self.topic, partition)
            highwater = self.consumer.highwater(tp)
            if highwater is None or self._fetched.get(partition, 0) < highwater:
                unread.add(partition)
        return unread

    async def _settled(self) -> None:
        """Waits for the batch in flight, if any (its failure surfaces here)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def _drained(self) -> bool:
        if not self.positions or len(self.merge):
            return False
        tps = [TopicPartition(self.topic, p) for p in self.positions]
        ends = await self.consumer.end_offsets(tps)
        return all(self.positions.get(tp.partition, -1) >= ends[tp] for tp in tps)

    async def _settle(self, items: list[Item[Request | Poison]], epoch: int) -> None:
        if epoch != self._epoch:
            return  # read before a seek to the database's offsets: they will be read again
        batch = await self._prepare(items)
        if not batch.progress:
            return  # every partition of it was revoked meanwhile
        await self.accounts.catch_up()
        result = await self._settle_with_retries(batch, items)
        if result.result == "fenced":
            self.summary.fenced += 1
            await self.resume([TopicPartition(self.topic, p) for p in batch.progress if p in self.positions])
            return
        if epoch == self._epoch:  # else a seek to the database's offsets happened meanwhile
            for progress in batch.progress.values():
                if progress.partition in self.positions:
                    self.positions[progress.partition] = progress.next_offset
        self.summary.batches += 1
        self.summary.requests += len(batch.requests)
        if batch.requests:
            _crash_hook("after_db_commit")
        offsets = {TopicPartition(self.topic, p.partition): p.next_offset for p in batch.progress.values()}

        async def after_publish() -> None:
            if batch.requests:
                _crash_hook("after_outcome_publish")
            await self._commit_kafka(offsets)

        if result.outbox_id is not None:
            await self.relay.submit(
                outbox_id=result.outbox_id, keys=result.keys, payloads=result.payloads, then=after_publish
            )
        else:
            await self._commit_kafka(offsets)

    async def _commit_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            # The database holds the truth; a lost Kafka commit only makes the lag look larger.
            log.warning("kafka offset commit failed (the database has the offsets): %s", error)

    async def _prepare(self, items: list[Item[Request | Poison]]) -> Batch:
        """Dead-letters poison messages and builds the batch with every partition's progress."""
        requests: list[Request] = []
        progress: dict[int, list[int]] = {}  # partition -> [start, next, messages, dead_lettered]
        letters: list[tuple[bytes, bytes]] = []
        for item in items:
            if item.partition not in self.positions or item.offset < self.positions[item.partition]:
                continue  # revoked while this batch waited (its new owner reads it), or settled already
            entry = progress.setdefault(item.partition, [self.positions[item.partition], 0, 0, 0])
            entry[1] = item.offset + 1
            entry[2] += 1
            if isinstance(item.payload, Poison):
                entry[3] += 1
                letters.append(self._letter(item.partition, item.offset, item.payload))
            else:
                requests.append(item.payload)
        if letters:
            await send_all(
                self.producer,
                topic=self.dead_letter_topic,
                keys=[k.decode() for k, _ in letters],
                payloads=[v for _, v in letters],
            )
            self.summary.dead_lettered += len(letters)
        return Batch(requests, {p: PartitionProgress(p, *e) for p, e in progress.items()})


async def settle_until_signalled(settler: Settler, *, until_idle: bool) -> RunSummary:
    """Runs the settler; SIGTERM and SIGINT let the current batch finish, then stop."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, settler.stop)
    return await settler.run(until_idle=until_idle)
