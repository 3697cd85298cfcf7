"""The metrics consumer loop: read outcomes, cash, orders, accounts, requests and dead letters;
aggregate; serve /metrics; save state with offsets in PostgreSQL.

Restart: the state and the next offset of every partition are saved together (one row, one
statement) every SAVE_EVERY_S and on stop; on start the consumer loads them and seeks there, so
figures after a restart equal those without one. Partitions are assigned by hand (one metrics
consumer per group, guarded by an advisory lock); the group's Kafka offsets are committed after
each save only so lag is visible to Kafka tools.

Accounts are read by a second consumer that is caught up to the log end before each batch of
the other topics, so a payment is attributed to its payer's district whatever the fetch order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import Lag, new_registry, serve
from consumers.metrics.reading import READ_ORDER, apply_record
from consumers.metrics.snapshot import dump_state, load_state
from consumers.metrics.store import MetricsStore, Offsets
from infra import kafka_clients
from infra.db import CONNECT_TIMEOUT_S, database_unreachable
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.kafka_lookups import REQUEST_TIMEOUT_MS, answered, patiently
from infra.settings import Settings
from schemas.topics import ACCOUNTS, PAYMENT_REQUESTS

log = logging.getLogger(__name__)

GROUP_DEFAULT: Final = "kp-metrics"
WATCHED_GROUPS_DEFAULT: Final = ("kp-ledger",)  # other groups whose lag is exported
BATCH_SIZE_MAX: Final = 5_000
POLL_TIMEOUT_MS: Final = 200
SAVE_EVERY_S: Final = 5.0
LAG_EVERY_S: Final = 1.0
# While a watched group (the ledger) has a backlog, the metrics consumer reads at most this many
# records per second, so settlement keeps the broker and the CPU; it catches up at full speed
# once the ledger is idle. Metrics are eventually consistent; their own lag is exported.
YIELD_RECORDS_PER_S: Final = 2_000
IDLE_POLLS: Final = 3  # empty, drained polls in a row before --until-idle stops
CATCH_UP_POLLS_MAX: Final = 10_000  # accounts polls per catch-up (each up to BATCH_SIZE_MAX records)
KAFKA_TIMEOUT_S: Final = 10.0
FETCH_WAIT_MS: Final = 20  # broker-side wait for data; short, as most of our partitions are idle at times
# A metrics process yields the CPU to settlement when both compete (2-core machines): its figures
# may lag for a while (exported as kp-metrics lag), the ledger's throughput does not suffer.
NICENESS: Final = 10


def lower_priority() -> None:
    """Lowers this process's CPU priority by NICENESS (for a process that runs only metrics)."""
    try:
        os.nice(NICENESS)
    except OSError as error:  # not permitted in some containers: run at normal priority
        log.warning("could not lower the metrics process's priority: %s", error)


@dataclass
class MetricsSummary:
    """What one run did."""

    records: int = 0
    saves: int = 0
    resumed: bool = False


class MetricsConsumer:
    """One metrics consumer: its state, its registry, and the loop that feeds them."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str = GROUP_DEFAULT,
        watched_groups: Iterable[str] = WATCHED_GROUPS_DEFAULT,
        yield_to_ledger: bool = True,
    ) -> None:
        self.settings = settings
        self.yield_to_ledger = yield_to_ledger  # False: always read at full speed
        self.group = group
        self.watched_groups = tuple(watched_groups)
        self.aggregator = Aggregator()
        self.lag: Lag = {}
        self.loaded = False  # the saved state (if any) is loaded: only then is anything exported
        self.registry = new_registry(lambda: self.aggregator if self.loaded else None, lambda: self.lag)
        self.drained = asyncio.Event()  # set each time every partition is read to its end
        self.summary = MetricsSummary()
        self._specs = {settings.topic(spec): spec for spec in READ_ORDER}
        self._watched_lag: Lag = {}
        self._next: dict[TopicPartition, int] = {}  # next offset to apply, per assigned partition
        self._saved_at_records = -1  # summary.records at the last save (-1: never saved)
        self._assigned = False  # only a fully assigned consumer may save (else offsets are incomplete)

    async def caught_up(self, timeout_s: float) -> bool:
        """Waits until every partition has been read to a log end queried after this call (e.g.
        once the ledger has finished); False on timeout. For running beside other consumers."""
        try:
            for _ in range(2):  # the second drained poll surely queried the log end after the call
                self.drained.clear()
                await asyncio.wait_for(self.drained.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- the run -------------------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False, stop: asyncio.Event | None = None,
                  serve_http: bool = True) -> MetricsSummary:  # fmt: skip
        """Consumes until `stop` is set, the task is cancelled, or (until_idle) all is drained."""
        stop = stop or asyncio.Event()
        # The port first: a busy port is the most common mistake and needs no other service.
        server = (
            await serve(self.registry, self.settings.metrics_port, self.settings.metrics_host) if serve_http else None
        )
        try:
            connection = await self._connect()
        except BaseException:
            if server is not None:
                server.close()
            raise
        try:
            store = MetricsStore(connection, group=self.group, prefix=self.settings.topic_prefix)
            if not await store.try_lock():
                raise SandboxError(
                    f"another metrics consumer of group '{self.group}' is running",
                    "stop it first (one metrics consumer per group), or pass a different --group",
                )
            saved = await store.load()
            if saved is not None:
                self.aggregator = load_state(saved.state)
                self.summary.resumed = True
            self.loaded = True
            await self._consume(store, saved.offsets if saved else {}, until_idle=until_idle, stop=stop)
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()
            await connection.close()
        return self.summary

    async def _connect(self) -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(self.settings.dsn, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(self.settings.dsn) from error
        if not await connection.fetchval("SELECT to_regclass('metrics_state') IS NOT NULL"):
            await connection.close()
            raise SandboxError("the metrics_state table is missing", "apply migrations with `kpsandbox up`")
        return connection

    async def _consume(self, store: MetricsStore, offsets: Offsets, *, until_idle: bool, stop: asyncio.Event) -> None:
        main = self._kafka_consumer()
        accounts = self._kafka_consumer()
        admin = kafka_clients.admin(self.settings, "metrics", request_timeout_ms=REQUEST_TIMEOUT_MS)
        try:
            try:
                await asyncio.wait_for(main.start(), KAFKA_TIMEOUT_S)
                await asyncio.wait_for(accounts.start(), KAFKA_TIMEOUT_S)
                await asyncio.wait_for(admin.start(), KAFKA_TIMEOUT_S)
            except (TimeoutError, KafkaError, OSError) as error:
                raise kafka_unreachable(self.settings) from error
            partitions = await self._partitions(admin)
            account_topic = self.settings.topic(ACCOUNTS)
            await self._assign(accounts, {account_topic: partitions.pop(account_topic)}, offsets)
            await self._assign(main, partitions, offsets)
            self._assigned = True
            await self._loop(main, accounts, admin, store, until_idle=until_idle, stop=stop)
        finally:
            try:
                await asyncio.shield(self._save(store, main, accounts))
            finally:
                await main.stop()
                await accounts.stop()
                await admin.close()

    def _kafka_consumer(self) -> AIOKafkaConsumer:
        return kafka_clients.consumer(
            self.settings,
            "metrics",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=2 * 1024 * 1024,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )

    async def _partitions(self, admin: AIOKafkaAdminClient) -> dict[str, list[int]]:
        """Partitions of every topic read; SandboxError naming the topics that do not exist."""
        described = await admin.describe_topics(list(self._specs))
        found = {d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described if not d["error_code"]}
        missing = sorted(t for t in self._specs if not found.get(t))
        if missing:
            raise SandboxError(
                f"topic(s) {', '.join(missing)} do not exist on {self.settings.bootstrap_servers}",
                "create the catalog topics with `kpsandbox topics create` (check KPSANDBOX_TOPIC_PREFIX)",
            )
        return found

    async def _assign(self, consumer: AIOKafkaConsumer, partitions: dict[str, list[int]], offsets: Offsets) -> None:
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            saved = offsets.get(tp.topic, {}).get(tp.partition)
            self._next[tp] = max(saved, starts[tp]) if saved is not None else starts[tp]
            consumer.seek(tp, self._next[tp])

    async def _loop(self, main: AIOKafkaConsumer, accounts: AIOKafkaConsumer, admin: AIOKafkaAdminClient,
                    store: MetricsStore, *, until_idle: bool, stop: asyncio.Event) -> None:  # fmt: skip
        idle_polls = 0
        last_save = last_lag = time.monotonic()
        await self._watched(admin, main)
        await self._catch_up(accounts)
        while not stop.is_set():
            fetched = await main.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_SIZE_MAX)
            if fetched:
                await self._catch_up(accounts)
                self._apply(fetched)
                idle_polls = 0
                self.drained.clear()
                if self.yield_to_ledger and any(self._watched_lag.values()):  # the ledger is busy: yield
                    await asyncio.sleep(sum(len(v) for v in fetched.values()) / YIELD_RECORDS_PER_S)
            elif await self._is_drained(main) and await self._catch_up(accounts) == 0:
                idle_polls += 1
                self.drained.set()
                if until_idle and idle_polls >= IDLE_POLLS:
                    return
            now = time.monotonic()
            self._own_lag(main, accounts)
            if now - last_lag >= LAG_EVERY_S:
                last_lag = now
                await self._watched(admin, main)
            if now - last_save >= SAVE_EVERY_S and self.summary.records != self._saved_at_records:
                last_save = now  # nothing new since the last save: the saved row is already current
                await self._save(store, main, accounts)

    def _apply(self, fetched: dict) -> None:  # type: ignore[type-arg]
        rank = {self.settings.topic(spec): k for k, spec in enumerate(READ_ORDER)}
        agg = self.aggregator
        for tp in sorted(fetched, key=lambda tp: (rank[tp.topic], tp.partition)):
            spec = self._specs[tp.topic]
            for record in fetched[tp]:
                agg.count_event(spec.name, apply_record(agg, spec, record.value, record.timestamp))
            if fetched[tp]:
                self._next[tp] = fetched[tp][-1].offset + 1
            self.summary.records += len(fetched[tp])

    async def _catch_up(self, accounts: AIOKafkaConsumer) -> int:
        """Reads the accounts topic up to its current end; returns how many records were read."""
        tps = list(accounts.assignment())
        ends = await patiently(lambda: accounts.end_offsets(tps), "the accounts topic's end offsets", log)
        read = 0
        for _ in range(CATCH_UP_POLLS_MAX):
            if all(self._next[tp] >= ends[tp] for tp in tps):
                return read
            fetched = await accounts.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_SIZE_MAX)
            self._apply(fetched)
            read += sum(len(v) for v in fetched.values())
        return read

    async def _is_drained(self, main: AIOKafkaConsumer) -> bool:
        tps = list(main.assignment())
        ends = await patiently(lambda: main.end_offsets(tps), "the end offsets of the topics read", log)
        return all(self._next[tp] >= ends[tp] for tp in tps)

    def _own_lag(self, *consumers: AIOKafkaConsumer) -> None:
        lag: Lag = dict(self._watched_lag)
        for consumer in consumers:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                position = self._next.get(tp)
                if highwater is not None and position is not None:
                    lag[(self.group, self._specs[tp.topic].name, tp.partition)] = max(0, highwater - position)
        self.lag = lag

    async def _watched(self, admin: AIOKafkaAdminClient, main: AIOKafkaConsumer) -> None:
        """Lag of the other groups (the ledger): log end minus their committed offsets. A requests
        partition the group never committed counts from its beginning: nobody has settled it."""
        lag: Lag = {}
        requests = [tp for tp in main.assignment() if self._specs[tp.topic] is PAYMENT_REQUESTS]
        try:
            starts = await answered(main.beginning_offsets(requests), "the requests topic's first offsets")
            for group in self.watched_groups:
                committed = await answered(admin.list_consumer_group_offsets(group), f"the offsets {group} committed")
                tps = sorted(set(requests) | {tp for tp in committed if tp.topic in self._specs})
                ends = await answered(main.end_offsets(tps), "the end offsets of the watched groups' topics")
                for tp in tps:
                    known = committed.get(tp)
                    done = known.offset if known is not None and known.offset >= 0 else starts.get(tp, 0)
                    lag[(group, self._specs[tp.topic].name, tp.partition)] = max(0, ends[tp] - done)
        except KafkaError as error:
            log.warning("could not read the lag of %s: %s", self.watched_groups, error)
            return
        self._watched_lag = lag

    async def _save(self, store: MetricsStore, *consumers: AIOKafkaConsumer) -> None:
        """Saves state and offsets together, then commits the offsets to Kafka (for lag tools)."""
        if not self._assigned:
            return
        offsets: Offsets = {}
        for tp, position in self._next.items():
            offsets.setdefault(tp.topic, {})[tp.partition] = position
        try:
            await store.save(state=dump_state(self.aggregator), offsets=offsets)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            log.warning("could not save the metrics state (will retry): %s", error)
            return
        self.summary.saves += 1
        self._saved_at_records = self.summary.records
        for consumer in consumers:
            mine = {tp: offsets[tp.topic][tp.partition] for tp in consumer.assignment()}
            if not mine:
                continue
            try:
                await consumer.commit(mine)
            except KafkaError as error:
                log.warning("kafka offset commit failed (PostgreSQL has the offsets): %s", error)


async def run_metrics(settings: Settings, *, until_idle: bool = False, stop: asyncio.Event | None = None,
                      serve_http: bool = True, group: str = GROUP_DEFAULT,
                      yield_to_ledger: bool = True) -> MetricsSummary:  # fmt: skip
    """Runs the metrics consumer (and its /metrics server on settings.metrics_port) until `stop`
    is set, the task is cancelled, or — with `until_idle` — every partition is drained.
    `yield_to_ledger=False` reads at full speed even while the ledger has a backlog."""
    consumer = MetricsConsumer(settings, group=group, yield_to_ledger=yield_to_ledger)
    return await consumer.run(until_idle=until_idle, stop=stop, serve_http=serve_http)
