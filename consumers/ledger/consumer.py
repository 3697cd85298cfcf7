"""The settlement loop: fetch → merge → decide and commit → relay → commit offsets.

Exactly-once effects: the database is the source of truth for what was consumed. Offsets are
written in the same transaction as the postings (and the dead letters); on assignment the
consumer seeks to them; Kafka offsets are committed only afterwards (for lag monitoring).
Outcomes and dead letters go through the outbox. Requests are read with
`isolation_level=read_committed`: aborted transactions are never settled, and a partition's
progress is the consumer's *position*, so transaction markers never hold a partition back.

Who writes what (docs/ledger.md, "The consumer loop", has the state diagram):
- `Positions` owns every partition's committed and fetched offsets; only its methods change them.
- The rebalance listener only calls `revoked()` / `assigned()`. A failure inside `assigned()` is
  never swallowed: the partitions are resumed by the loop (bounded retries) or the process fails.
- One batch is in flight at a time (`_inflight`): the next is fetched while it is in PostgreSQL.
- The relay worker publishes committed rows; the loop checks it every step and fails with it.

Test hook: KPSANDBOX_LEDGER_CRASH_AT=after_db_commit|after_outcome_publish makes the process
kill itself (exit status 137, no cleanup) at that point of the first batch with requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Final

import asyncpg
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from consumers.ledger import repository
from consumers.ledger.backlog import stored_offsets, unsettled
from consumers.ledger.batch import Batch, BatchResult, prepare_batch
from consumers.ledger.clients import Clients, connect
from consumers.ledger.collector import collecting_rarely
from consumers.ledger.intake import Intake
from consumers.ledger.merge import Item, PartitionMerge
from consumers.ledger.observe import start_metrics_server, stop_metrics_server
from consumers.ledger.outbox import DB_TRANSIENT
from consumers.ledger.positions import Positions, check_within_log
from consumers.ledger.reading import Poison
from consumers.ledger.records import Request
from consumers.ledger.retries import DB_RETRY_WAIT_S, DB_UNAVAILABLE_ATTEMPTS_MAX
from consumers.ledger.summary import RunSummary
from consumers.ledger.tally import Tally
from infra.db import database_unreachable
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.kafka_lookups import answered
from infra.settings import Settings
from schemas.topics import PAYMENT_REQUESTS

log = logging.getLogger(__name__)

GROUP_DEFAULT: Final = "kp-ledger"
BATCH_SIZE_MAX: Final = 4_000
BATCH_WAIT_MS: Final = 20
# While a batch is in PostgreSQL the loop keeps fetching and parsing, looking this often whether the
# batch is done; the next batch is taken only then, so it holds everything that arrived meanwhile.
INFLIGHT_POLL_S: Final = 0.004
IDLE_POLLS: Final = 3  # empty, caught-up polls in a row before --until-idle stops
OUTBOX_BACKLOG_AGE_S: Final = 5.0
CRASH_ENV: Final = "KPSANDBOX_LEDGER_CRASH_AT"


def _crash_hook(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        os._exit(137)


async def _done_soon(batch: asyncio.Task[None]) -> bool:
    """Waits a little for the batch in flight; True when it is done. The next batch is taken only
    then, so a payment that arrived while one batch ran goes into the very next, not the one after."""
    done, _ = await asyncio.wait([batch], timeout=INFLIGHT_POLL_S)
    return bool(done)


class _Rebalance(ConsumerRebalanceListener):
    """Forwards aiokafka's callbacks to the settler's two methods; holds no state."""

    def __init__(self, settler: Settler) -> None:
        self.settler = settler

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.settler.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.settler.assigned([tp.partition for tp in assigned])


class Settler:
    """One ledger consumer process."""

    def __init__(self, settings: Settings, *, group: str = GROUP_DEFAULT, serve_metrics: bool = False) -> None:
        self.settings = settings
        self.group = group
        self.serve_metrics = serve_metrics
        self.topic = settings.topic(PAYMENT_REQUESTS)
        self.positions = Positions()
        self.intake = Intake(self.topic, self.positions)  # the requests topic into the merge
        self.tally = Tally(group)  # the run summary and /metrics
        self._stopping = asyncio.Event()
        self._inflight: asyncio.Task[None] | None = None
        self._joined = False  # the group assigned us something, possibly nothing
        self._to_resume: set[int] = set()  # assigned, but the assignment callback failed to seek
        self.clients: Clients  # opened by run(), closed when it returns

    @property
    def merge(self) -> PartitionMerge[Request | Poison]:
        """The intake's merge buffers (the loop takes batches from it)."""
        return self.intake.merge

    def stop(self) -> None:
        """Asks the loop to finish its current batch and return (SIGTERM, Ctrl-C)."""
        self._stopping.set()

    # -- assignment (called by the rebalance listener) -------------------------------------------
    async def revoked(self, partitions: list[int]) -> None:
        """Lets the batch in flight commit first (its offsets become final), then forgets the partitions."""
        if self._inflight is not None:
            await asyncio.wait([self._inflight])  # its failure, if any, surfaces in the loop
        self._joined = False  # until the group assigns again, holding nothing does not mean idle
        for partition in partitions:
            self._forget(partition)
        self.tally.metrics.set_assigned(self.positions.assigned())

    async def assigned(self, partitions: list[int]) -> None:
        """Seeks newly assigned partitions to the database's offsets; a failure is retried by the loop."""
        self._joined = True
        try:
            await self.resume(partitions)
        except Exception as error:  # aiokafka would only log it and leave the partitions unread
            log.warning("could not resume partitions %s after assignment (the loop retries): %s", partitions, error)
            self._to_resume.update(partitions)
            self.tally.metrics.retried("assignment")

    def _forget(self, partition: int) -> None:
        """Drops everything buffered for a partition this process no longer owns (or re-reads)."""
        self.intake.forget(partition)
        self.positions.revoke(partition)
        self._to_resume.discard(partition)

    async def resume(self, partitions: list[int]) -> None:
        """Seeks partitions to where the database says they stand, after checking the log still has it."""
        if not partitions:
            return
        tps = [TopicPartition(self.topic, p) for p in partitions]
        starts = await answered(self.clients.consumer.beginning_offsets(tps), "the requests topic's first offsets")
        # read_committed: the last stable offsets
        ends = await answered(self.clients.consumer.end_offsets(tps), "the requests topic's end offsets")
        async with self.clients.pool.acquire() as connection:
            stored = await repository.ensure_offsets(
                connection, group=self.group, topic=self.topic, starts={tp.partition: o for tp, o in starts.items()}
            )
        for tp in tps:
            check_within_log(self.topic, tp.partition, stored[tp.partition][0], starts[tp], ends[tp])
        for tp in tps:
            committed, clock = stored[tp.partition]
            self._forget(tp.partition)
            self.clients.consumer.seek(tp, committed)
            self.positions.assign(tp.partition, committed)
            if clock is not None:
                self.tally.clocks[tp.partition] = clock
        self.tally.metrics.set_assigned(self.positions.assigned())

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, *, until_idle: bool, batch_size_max: int = BATCH_SIZE_MAX) -> RunSummary:
        """Settles until cancelled (or, with `until_idle`, until every assigned partition is drained)."""
        settings = self.settings
        server = None
        if self.serve_metrics:  # first: a busy port needs no other service to be reported
            server = await start_metrics_server(
                self.tally.metrics, host=settings.metrics_host, port=settings.ledger_metrics_port
            )
        try:
            await self._run_connected(until_idle=until_idle, batch_size_max=batch_size_max)
        except DB_TRANSIENT as error:  # outside the loop's retries (start-up, shutdown)
            raise database_unreachable(settings.dsn) from error
        except asyncpg.PostgresError as error:  # waiting cannot heal it (read-only, privileges)
            raise SandboxError(
                f"PostgreSQL refused the ledger: {type(error).__name__}: {error}",
                "make the database writable for the ledger's user, then run `kpsandbox settle` again",
            ) from error
        finally:
            if server is not None:
                await stop_metrics_server(server)
        return self.tally.summary

    async def _run_connected(self, *, until_idle: bool, batch_size_max: int) -> None:
        self.clients = clients = await connect(self.settings, group=self.group, metrics=self.tally.metrics)
        try:
            await clients.relay.relay_backlog(older_than_s=0)  # what a previous process left unpublished
            clients.relay.start()
            await clients.accounts.start()
            clients.consumer.subscribe([self.topic], listener=_Rebalance(self))
            await clients.consumer.start()
            try:
                await self._loop(until_idle=until_idle, batch_size_max=batch_size_max)
            finally:
                await self._settled()
            await clients.relay.drain()
            await clients.relay.relay_backlog(older_than_s=0)  # leave nothing unpublished behind
            self.tally.summary.partitions = self.positions.assigned()
        finally:
            await clients.close()

    async def _loop(self, *, until_idle: bool, batch_size_max: int) -> None:
        """Runs steps until stopped; a database or broker outage pauses it, then it resyncs."""
        with collecting_rarely():
            await self._steps(until_idle=until_idle, batch_size_max=batch_size_max)

    async def _steps(self, *, until_idle: bool, batch_size_max: int) -> None:
        idle_polls = 0
        failures = 0
        resync = False
        while not self._stopping.is_set():
            self.clients.relay.check()
            try:
                if resync:
                    await self.resume(self.positions.assigned())
                    resync = False
                if self._to_resume:
                    mine = {tp.partition for tp in self.clients.consumer.assignment()}
                    await self.resume(sorted(self._to_resume & mine))
                    self._to_resume.clear()
                idle_polls = await self._step(until_idle=until_idle, batch_size_max=batch_size_max, idle=idle_polls)
                failures = 0
            except (*DB_TRANSIENT, KafkaError) as error:
                failures += 1
                if failures > DB_UNAVAILABLE_ATTEMPTS_MAX:
                    if isinstance(error, KafkaError):
                        raise kafka_unreachable(self.settings) from error
                    raise database_unreachable(self.settings.dsn) from error
                self.tally.metrics.retried("kafka_unavailable" if isinstance(error, KafkaError) else "db_unavailable")
                log.warning("settling paused (%s/%s): %s", failures, DB_UNAVAILABLE_ATTEMPTS_MAX, error)
                await asyncio.sleep(DB_RETRY_WAIT_S)
                resync = True  # re-read from what the database says was settled

            if idle_polls >= IDLE_POLLS:
                return

    async def _step(self, *, until_idle: bool, batch_size_max: int, idle: int) -> int:
        """Fetches, and settles what the merge releases; returns the count of idle polls so far."""
        running = self._inflight if self._inflight is not None and not self._inflight.done() else None
        # A batch's worth buffered is enough only if the merge can release it (no unread partition
        # without a message buffered); each buffer stays bounded by intake.BUFFERED_PER_PARTITION_MAX.
        waiting = self.merge.waiting_for(self.positions.unread(self.intake.log_ends(self.clients.consumer)))
        if len(self.merge) >= batch_size_max and not waiting:
            fetched = {}  # the next batch is buffered already: memory stays that of two batches
            if running is not None:
                await asyncio.wait([running])
        else:
            if running is None:
                self.clients.relay.go()  # nothing is put first: the relay publishes while this waits
            fetched = await self._fetch(timeout_ms=BATCH_WAIT_MS if running is None else 0, records_max=batch_size_max)
            if running is not None and not await _done_soon(running):
                return 0  # fetch and parse more while it runs
        await self.intake.note_positions(self.clients.consumer)
        ends = self.intake.log_ends(self.clients.consumer)
        items = self.merge.take(batch_size_max, unread=self.positions.unread(ends))
        for item in items:
            self.positions.claim(item.partition, item.offset + 1)
        empty = [p for p in self.positions.assigned() if not self.merge.buffered(p)]
        skips = self.positions.skippable(empty)  # markers and aborted records past the last message
        await self.tally.refresh(self.positions, ends, self.clients.relay.depth)
        if items or skips:
            # The next batch is fetched and parsed while this one is in PostgreSQL; two batches
            # never settle at once (the previous one finishes first: positions, locks, order).
            epoch = self.positions.epoch  # items read before a later seek are stale: _settle drops them
            await self._settled()
            self._inflight = asyncio.create_task(self._settle(items, skips, epoch))
            await asyncio.sleep(0)  # it begins its transaction before anything more is parsed
            self.clients.relay.go()  # the last batch's outcomes are published while PostgreSQL works
            return 0
        await self._settled()
        self.clients.relay.go()
        if not fetched:  # accounts opened with no request after them are stored too (the API shows them)
            await self.clients.accounts.catch_up()
        if until_idle and not fetched and not len(self.merge) and await self._drained():
            return idle + 1
        if not fetched:
            await self.clients.relay.relay_backlog(older_than_s=OUTBOX_BACKLOG_AGE_S)
        return 0

    async def _fetch(self, *, timeout_ms: int, records_max: int) -> dict[TopicPartition, list]:
        """Fetches and parses into the merge (intake.py); forgets what Kafka no longer assigns."""
        consumer = self.clients.consumer
        fetched = await self.intake.fetch(consumer, timeout_ms=timeout_ms, records_max=records_max)
        for partition in self.intake.throttle(consumer):
            self._forget(partition)  # a rebalance took it, even if the revoke callback came late
        return fetched

    async def _settled(self) -> None:
        """Waits for the batch in flight, if any (its failure surfaces here)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def _drained(self) -> bool:
        """True when every assigned partition's committed offset reached its end (none assigned: joined)."""
        if not len(self.positions):  # given nothing: idle only if the group has nothing left either
            return self._joined and not self._to_resume and await self._group_drained()
        tps = [TopicPartition(self.topic, p) for p in self.positions.assigned()]
        ends = await answered(self.clients.consumer.end_offsets(tps), "the requests topic's end offsets")
        return self.positions.drained(_by_partition(ends))

    async def _group_drained(self) -> bool:
        """True when the group's offsets in the database reach the end of every partition of the topic
        (a member with no partition cannot tell "nothing to do" from "metadata not settled yet")."""
        consumer = self.clients.consumer
        parts = consumer.partitions_for_topic(self.topic)
        if not parts:
            return False
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        ends = await answered(consumer.end_offsets(tps), "the requests topic's end offsets")
        starts = await answered(consumer.beginning_offsets(tps), "the requests topic's first offsets")
        async with self.clients.pool.acquire() as connection:
            stored = await stored_offsets(connection, self.group, self.topic)
        return unsettled(_by_partition(ends), _by_partition(starts), stored) == 0

    async def _settle(self, items: list[Item[Request | Poison]], skips: dict[int, int], epoch: int) -> None:
        if epoch != self.positions.epoch:
            return  # read before a seek to the database's offsets: they will be read again
        batch = prepare_batch(items, skips, positions=self.positions, letter=self.clients.writer.letter)
        if not batch.progress:
            return  # every partition of it was revoked meanwhile, or settled already
        await self.clients.accounts.catch_up_for(batch.accounts)
        started = time.perf_counter()
        for part, result in await self.clients.writer.write(batch, items):
            self.clients.accounts.stored(result.accounts)
            if result.result == "fenced":
                self.tally.fenced()
                await self.resume([p for p in part.progress if p in self.positions])
                return
            self.tally.settled(part, result, time.perf_counter() - started)
            for progress in part.progress.values():
                self.positions.settled(progress.partition, progress.next_offset, epoch=epoch)
            await self._relay(part, result)

    async def _relay(self, batch: Batch, result: BatchResult) -> None:
        """Hands the committed row to the relay; Kafka offsets are committed once it is published."""
        if batch.requests:
            _crash_hook("after_db_commit")
        offsets = {TopicPartition(self.topic, p.partition): p.next_offset for p in batch.progress.values()}

        async def after_publish() -> None:
            if batch.requests:
                _crash_hook("after_outcome_publish")
            await self._commit_kafka(offsets)

        if result.committed is not None:
            await self.clients.relay.submit(result.committed, then=after_publish)
        else:
            await self._commit_kafka(offsets)

    async def _commit_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.clients.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            # The database holds the truth; a lost Kafka commit only makes the lag look larger.
            log.warning("kafka offset commit failed (the database has the offsets): %s", error)


def _by_partition(offsets: dict[TopicPartition, int]) -> dict[int, int]:
    """Offsets of the requests topic by partition number."""
    return {tp.partition: offset for tp, offset in offsets.items()}
