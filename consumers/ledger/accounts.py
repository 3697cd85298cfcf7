"""Reading kp.accounts.v1 into ledger accounts, drained before every batch of requests is decided.

Every ledger process reads every accounts partition (no consumer group: any request may name any
account). Before a batch is decided the reader catches up to the topic's end offsets as they are
*after* the batch was fetched, so an account.opened acknowledged before its first request was
published is always known when that request is decided: `account_not_found` then only means the
account really was never opened (or was opened later in the stream). A catch-up that cannot reach
the end within its bound fails the batch loudly rather than deciding against a stale account list.
A batch whose every account is known to be stored skips the catch-up (an account is only ever
opened, never changed, so reading on could not change a decision); the reader still catches up at
least every CATCH_UP_INTERVAL_S while busy, so accounts nobody pays are stored too.
Unreadable account events are dead-lettered through the outbox, committed with the offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter

from consumers.ledger import repository
from consumers.ledger.deadletter import Letter, Unreadable, dead_letter, read_event
from consumers.ledger.outbox import Committed, OutcomeRelay
from consumers.ledger.records import account_flags
from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import topic_missing
from infra.kafka_lookups import REQUEST_TIMEOUT_MS, answered
from infra.settings import Settings
from schemas.accounts import AccountOpened
from schemas.topics import ACCOUNTS

ACCOUNT_FETCH_RECORDS_MAX: Final = 5_000
ACCOUNT_FETCH_WAIT_MS: Final = 50
ACCOUNT_SYNC_ROUNDS_MAX: Final = 1_000  # bounds one catch-up (5 million accounts)
METADATA_WAIT_S: Final = 10.0
CATCH_UP_INTERVAL_S: Final = 1.0  # the longest a busy ledger goes without reading the accounts topic
KNOWN_ACCOUNTS_MAX: Final = 1_000_000  # ids remembered as stored; past it the set starts again

ACCOUNT_ADAPTER: Final = TypeAdapter(AccountOpened)
ACCOUNT_TYPES: Final = ACCOUNTS.event_type_names


class AccountsReader:
    """Keeps ledger_accounts up to date with the accounts topic."""

    def __init__(
        self,
        *,
        settings: Settings,
        topic: str,
        group: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        relay: OutcomeRelay,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        self.pool = pool
        self.producer = producer
        self.relay = relay
        self.consumer = kafka_clients.consumer(
            settings,
            "ledger",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id=f"{group}-accounts",
            fetch_max_wait_ms=ACCOUNT_FETCH_WAIT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        self.partitions: list[TopicPartition] = []
        self._known: set[str] = set()  # accounts known to be in ledger_accounts
        self._caught_up_at = float("-inf")  # time.monotonic() of the last catch-up that reached the end

    async def start(self) -> None:
        """Assigns every partition and resumes from the offsets the database recorded."""
        await self.consumer.start()
        try:  # the producer's metadata lookup waits for the topic; an unsubscribed consumer's does not
            parts = await asyncio.wait_for(self.producer.partitions_for(self.topic), METADATA_WAIT_S)
        except (TimeoutError, KafkaError):
            parts = set()
        if not parts:
            raise topic_missing(self.settings, self.topic)
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)
        starts = await self.consumer.beginning_offsets(self.partitions)  # at start-up: aiokafka's own patience
        async with self.pool.acquire() as connection:
            stored = await repository.ensure_offsets(
                connection, group=self.group, topic=self.topic, starts={tp.partition: o for tp, o in starts.items()}
            )
        for tp in self.partitions:
            self.consumer.seek(tp, stored[tp.partition][0])
        # Paused between catch-ups: no fetch is in flight, so end_offsets answers at once.
        self.consumer.pause(*self.partitions)

    async def stop(self) -> None:
        """Closes the Kafka consumer."""
        await self.consumer.stop()

    def stored(self, ids: Iterable[str]) -> None:
        """Remembers accounts found in ledger_accounts (a batch locked them)."""
        if len(self._known) >= KNOWN_ACCOUNTS_MAX:
            self._known.clear()
        self._known.update(ids)

    async def catch_up_for(self, names: Iterable[str]) -> int:
        """Catches up before a batch that names `names`, unless every one is known to be stored and
        the last catch-up is recent; returns accounts read."""
        if self._known.issuperset(names) and time.monotonic() - self._caught_up_at < CATCH_UP_INTERVAL_S:
            return 0
        return await self.catch_up()

    async def catch_up(self) -> int:
        """Reads up to the current end of the topic; returns accounts read."""
        started = time.monotonic()
        ends = await answered(self.consumer.end_offsets(self.partitions), "the accounts topic's end offsets")
        read = 0
        for _ in range(ACCOUNT_SYNC_ROUNDS_MAX):
            behind = [tp for tp in self.partitions if await self.consumer.position(tp) < ends[tp]]
            if not behind:
                self._caught_up_at = started
                return read
            self.consumer.resume(*behind)
            try:
                batches = await self.consumer.getmany(
                    *behind, timeout_ms=ACCOUNT_FETCH_WAIT_MS, max_records=ACCOUNT_FETCH_RECORDS_MAX
                )
            finally:
                self.consumer.pause(*behind)
            read += await self._store(batches)
        raise SandboxError(
            f"the accounts topic {self.topic} could not be read to its end in {ACCOUNT_SYNC_ROUNDS_MAX} rounds",
            "check Kafka (`kpsandbox status`) and run `kpsandbox settle` again; no request was decided meanwhile",
        )

    async def _store(self, batches: dict) -> int:
        rows: list[tuple[str, str, int, datetime, str | None]] = []
        next_offsets: dict[int, int] = {}
        letters: list[Letter] = []
        for tp, messages in batches.items():
            for message in messages:
                event = read_event(message.value, ACCOUNT_ADAPTER, ACCOUNT_TYPES)
                if isinstance(event, Unreadable):
                    letter = dead_letter(
                        reason=event.reason,
                        detail=event.detail,
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=message.offset,
                        group=self.group,
                        key=message.key,
                        value=message.value,
                        headers=tuple(message.headers or ()),
                        now=datetime.now(UTC),
                    )
                    letters.append(letter)
                else:
                    rows.append(
                        (event.account_id, event.kind, account_flags(event.kind), event.occurred_at, event.tier)
                    )
                next_offsets[tp.partition] = message.offset + 1
        outbox_id = None
        if next_offsets:
            async with self.pool.acquire() as connection, connection.transaction():
                await repository.open_accounts(connection, rows=rows)
                await repository.advance_account_offsets(
                    connection, group=self.group, topic=self.topic, next_offsets=next_offsets
                )
                outbox_id = await repository.insert_outbox(connection, keys=[], payloads=[], letters=letters)
        if outbox_id is not None:
            await self.relay.publish_with_retries(Committed(outbox_id, [], [], letters))
        self.stored(row[0] for row in rows)
        return len(rows)
