"""The views consumer loop: read the outcomes topic, move the API's payments, top-ups and refunds on.

Exactly once, as the ledger does it: each fetched batch is applied in one PostgreSQL transaction
that first locks the batch's rows in api_views_offsets, skips records below the stored offsets
(another consumer of the group applied them), writes the status changes and then the new offsets.
A crash anywhere replays from the stored offsets, whose effects were committed with them.
Partitions are assigned by hand (all of them); the positions live in PostgreSQL, not in Kafka.

Most outcomes are the simulation's: only the `request_event_id` is read from them (a regular
expression, no parse), and one query per batch says which requests the API made. An outcome
for a request the API did not make is ignored.

A lost database or broker ends the run with the error (the supervisor restarts the process; the
stored offsets make the restart exact).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import Field, TypeAdapter, ValidationError

from consumers.views.store import ViewsStore
from consumers.views.transitions import Outcome, Target, change_for
from infra import kafka_clients
from infra.db import CONNECT_TIMEOUT_S, database_unreachable, migrate
from infra.kafka_admin import kafka_unreachable, topic_missing
from infra.kafka_lookups import REQUEST_TIMEOUT_MS, patiently
from infra.settings import Settings
from infra.webhook_events import NewEvent
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled
from schemas.topics import PAYMENT_OUTCOMES

log = logging.getLogger(__name__)

GROUP_DEFAULT: Final = "kp-api-views"
BATCH_SIZE_MAX: Final = 5_000
POLL_TIMEOUT_MS: Final = 100
FETCH_WAIT_MS: Final = 20  # broker-side wait for data: an API client is waiting on each outcome
IDLE_POLLS: Final = 3  # empty, drained polls in a row before an until-idle run stops
KAFKA_TIMEOUT_S: Final = 10.0
UNTIL_IDLE_TIMEOUT_S: Final = 120.0  # run_until_idle's bound on the whole run

OUTCOME: Final[TypeAdapter[Outcome]] = TypeAdapter(
    Annotated[PaymentSettled | PaymentRejected | PaymentExpired, Field(discriminator="event_type")]
)
REQUEST_EVENT_ID: Final = re.compile(rb'"request_event_id"\s*:\s*"([0-9a-fA-F-]{36})"')


@dataclass
class ViewsSummary:
    """What one run did."""

    records: int = 0  # outcomes read
    applied: int = 0  # status changes written
    ignored: int = 0  # outcomes of requests the API did not make, or that changed nothing
    unreadable: int = 0  # records that are not an outcome (the ledger dead-letters requests, not us)


def request_event_id(value: bytes | None) -> UUID | None:
    """The `request_event_id` of an outcome's JSON, found without parsing it; None when it has none."""
    if value is None:
        return None
    match = REQUEST_EVENT_ID.search(value)
    if match is None:
        return None
    try:
        return UUID(match.group(1).decode())
    except ValueError:
        return None


class ViewsConsumer:
    """One views consumer: its Kafka consumer, its connection and its positions (the only writer of each)."""

    def __init__(self, settings: Settings, *, group: str = GROUP_DEFAULT) -> None:
        self.settings = settings
        self.group = group
        self.topic = settings.topic(PAYMENT_OUTCOMES)
        self.summary = ViewsSummary()
        self._next: dict[TopicPartition, int] = {}  # next offset to apply, per assigned partition

    async def run(self, *, until_idle: bool = False, stop: asyncio.Event | None = None) -> ViewsSummary:
        """Applies outcomes until `stop` is set, the task is cancelled, or (until_idle) all is drained."""
        stop = stop or asyncio.Event()
        await migrate(self.settings.dsn)  # idempotent; the API's tables may not exist yet on a fresh database
        try:
            connection = await asyncpg.connect(self.settings.dsn, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(self.settings.dsn) from error
        consumer = kafka_clients.consumer(
            self.settings,
            "views",
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        try:
            try:
                await asyncio.wait_for(consumer.start(), KAFKA_TIMEOUT_S)
            except (TimeoutError, KafkaError, OSError) as error:
                raise kafka_unreachable(self.settings) from error
            store = ViewsStore(connection, group=self.group, topic=self.topic)
            await self._assign(consumer, store)
            await self._loop(consumer, store, until_idle=until_idle, stop=stop)
        finally:
            await consumer.stop()
            await connection.close()
        return self.summary

    async def _assign(self, consumer: AIOKafkaConsumer, store: ViewsStore) -> None:
        """Assigns every outcomes partition and seeks each to its stored offset (created at its beginning)."""
        partitions = await self._partitions()
        if not partitions:
            raise topic_missing(self.settings, self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        stored = await store.ensure_offsets(starts={tp.partition: starts[tp] for tp in tps})
        for tp in tps:
            self._next[tp] = max(stored[tp.partition], starts[tp])  # retention may have passed the stored one
            consumer.seek(tp, self._next[tp])

    async def _partitions(self) -> list[int]:
        """The outcomes topic's partitions as the broker describes them now (none: no such topic)."""
        admin = kafka_clients.admin(self.settings, "views")
        try:
            await asyncio.wait_for(admin.start(), KAFKA_TIMEOUT_S)
            described = await asyncio.wait_for(admin.describe_topics([self.topic]), KAFKA_TIMEOUT_S)
        except (TimeoutError, KafkaError, OSError) as error:
            raise kafka_unreachable(self.settings) from error
        finally:
            await admin.close()
        return sorted(p["partition"] for d in described if not d["error_code"] for p in d["partitions"])

    async def _loop(self, consumer: AIOKafkaConsumer, store: ViewsStore, *, until_idle: bool,
                    stop: asyncio.Event) -> None:  # fmt: skip
        idle_polls = 0
        while not stop.is_set():  # bounded by `stop` (or, until idle, by IDLE_POLLS drained polls)
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_SIZE_MAX)
            if any(fetched.values()):
                await self._apply(consumer, store, fetched)
                idle_polls = 0
            elif await self._drained(consumer):
                idle_polls += 1
                if until_idle and idle_polls >= IDLE_POLLS:
                    return

    async def _apply(self, consumer: AIOKafkaConsumer, store: ViewsStore, fetched: dict[TopicPartition, Any]) -> None:
        """Applies one fetched batch and its offsets in one transaction (see the module's docstring)."""
        tps = [tp for tp, records in fetched.items() if records]
        async with store.transaction():
            stored = await store.lock_offsets(partitions=[tp.partition for tp in tps])
            fresh = {tp: [r for r in fetched[tp] if r.offset >= stored[tp.partition]] for tp in tps}
            ids = {tp: [request_event_id(r.value) for r in fresh[tp]] for tp in tps}
            targets = await store.targets(
                request_event_ids=sorted({i for found in ids.values() for i in found if i is not None}, key=str)
            )
            applied: dict[int, int] = {}
            next_offsets: dict[int, int] = {}
            announced: list[NewEvent] = []  # ≤ 2 per outcome (a refund and its payment), in the batch's order
            for tp in tps:
                for record, found in zip(fresh[tp], ids[tp], strict=True):
                    applied[tp.partition] = applied.get(tp.partition, 0) + await self._apply_one(
                        store, record.value, targets.get(found) if found is not None else None, found, announced
                    )
                next_offsets[tp.partition] = max(stored[tp.partition], fetched[tp][-1].offset + 1)
            await store.announce(announced)
            await store.advance_offsets(next_offsets=next_offsets, applied=applied)
        self.summary.records += sum(len(records) for records in fresh.values())
        for tp in tps:
            if next_offsets[tp.partition] > fetched[tp][-1].offset + 1:  # another consumer went further
                consumer.seek(tp, next_offsets[tp.partition])
            self._next[tp] = next_offsets[tp.partition]

    async def _apply_one(
        self,
        store: ViewsStore,
        value: bytes | None,
        target: Target | None,
        found: UUID | None,
        announced: list[NewEvent],
    ) -> int:
        """Applies one outcome to its API object; 1 when it changed something, else 0."""
        if found is None:
            self.summary.unreadable += 1
            return 0
        if target is None:  # the simulation's, or a request the API took back
            self.summary.ignored += 1
            return 0
        try:
            outcome = OUTCOME.validate_json(value or b"")
        except ValidationError:
            log.warning("an outcome of the API's request %s is unreadable; skipped", found)
            self.summary.unreadable += 1
            return 0
        if await store.apply(change_for(outcome, target), announced=announced):
            self.summary.applied += 1
            return 1
        self.summary.ignored += 1  # delivered twice, or late: the object has moved on
        return 0

    async def _drained(self, consumer: AIOKafkaConsumer) -> bool:
        tps = list(self._next)
        ends = await patiently(lambda: consumer.end_offsets(tps), "the outcomes topic's end offsets", log)
        return all(self._next[tp] >= ends[tp] for tp in self._next)


async def run_views(
    settings: Settings, *, until_idle: bool = False, stop: asyncio.Event | None = None, group: str = GROUP_DEFAULT
) -> ViewsSummary:
    """Runs the views consumer until `stop` is set, the task is cancelled, or (until_idle) every
    outcomes partition is drained."""
    return await ViewsConsumer(settings, group=group).run(until_idle=until_idle, stop=stop)


async def run_until_idle(
    settings: Settings, *, group: str = GROUP_DEFAULT, timeout_s: float = UNTIL_IDLE_TIMEOUT_S
) -> ViewsSummary:
    """Applies every outcome on the topic now, then returns (for tests and one-shot runs);
    TimeoutError after `timeout_s`."""
    return await asyncio.wait_for(run_views(settings, until_idle=True, group=group), timeout_s)
