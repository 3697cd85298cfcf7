"""Settling one batch: lock, decide with the pure rules, write everything in one transaction.

The transaction starts by locking the batch's offset rows and checking that the database still
says what this process believed when it read the batch. If another process moved them (it took
the partition over in a rebalance), nothing is written: the batch is `fenced` and dropped.
Dead letters are written in the same transaction (into the outbox), so a fenced or retried
batch never sends one: each poison message is dead-lettered once, after the commit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal
from uuid import UUID

import asyncpg

from consumers.ledger import repository
from consumers.ledger.clock import ClockKey, clock_tenant, reachable_clocks
from consumers.ledger.deadletter import Letter
from consumers.ledger.domain import Ledger, accounts_named
from consumers.ledger.merge import Item
from consumers.ledger.outbox import Committed
from consumers.ledger.outcomes import expiry_outcome_bytes, outcome_bytes
from consumers.ledger.positions import Positions
from consumers.ledger.reading import Poison
from consumers.ledger.records import Decision, Effects, Expired, Request
from consumers.ledger.turns import give_way
from consumers.ledger.wire import PaymentPostRequested, PaymentRequested, PaymentVoidRequested
from schemas.topics import PAYMENT_REQUESTS, tenant_outcomes_name

OUTCOMES_PER_SLICE: Final = 500  # outcomes encoded between two turns of the row writer


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one partition moves in this batch."""

    partition: int
    start_offset: int  # where the database said it stood when this batch was read
    next_offset: int  # where it stands after this batch
    messages: int
    dead_lettered: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Requests in decision order, the dead letters of its poison messages, and every partition's progress.

    A partition may progress with no message at all: its reader skipped transaction markers or
    aborted records (read_committed), and the database's offset must still reach them.
    """

    requests: list[Request]
    progress: dict[int, PartitionProgress]
    letters: list[Letter] = field(default_factory=list)
    # Every account its requests name, gathered once: the accounts reader catches up for them
    # before the transaction, and the transaction locks them.
    accounts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accounts", frozenset(n for r in self.requests for n in accounts_named(r.event)))


@dataclass(slots=True)
class BatchResult:
    """`settled` with the outbox row to relay (if any), or `fenced` (another process owns a partition)."""

    result: Literal["settled", "fenced"]
    committed: Committed | None = None
    transfers: int = 0
    results: Counter[str] = field(default_factory=Counter)  # result code -> requests
    expired: int = 0
    clocks: dict[int, datetime] = field(default_factory=dict)  # partition -> latest producer clock
    accounts: frozenset[str] = frozenset()  # the accounts it found stored (and locked)


def prepare_batch(
    items: list[Item[Request | Poison]],
    skips: dict[int, int],
    *,
    positions: Positions,
    letter: Callable[[Item[Request | Poison], str, str], Letter],
) -> Batch:
    """The batch of merged items: requests in order, dead letters of poison, and every partition's
    progress from where the database says it stands (`skips`: partitions whose fetch position is
    past their last message — transaction markers, aborted records — move there too)."""
    requests: list[Request] = []
    letters: list[Letter] = []
    progress: dict[int, list[int]] = {}  # partition -> [start, next, messages, dead_lettered]
    # Where the database says each assigned partition stands, looked up once per partition.
    starts = {p: positions.committed(p) for p in {item.partition for item in items} if p in positions}
    for item in items:
        partition = item.partition
        start = starts.get(partition)
        if start is None or item.offset < start:
            continue  # revoked while this batch waited (its new owner reads it), or settled already
        entry = progress.get(partition)
        if entry is None:
            entry = progress[partition] = [start, 0, 0, 0]
        entry[1] = item.offset + 1
        entry[2] += 1
        if isinstance(item.payload, Poison):
            entry[3] += 1
            letters.append(letter(item, item.payload.reason, item.payload.detail))
        else:
            requests.append(item.payload)
    for partition, fetched in skips.items():
        if partition in positions and fetched > positions.committed(partition):
            entry = progress.setdefault(partition, [positions.committed(partition), 0, 0, 0])
            entry[1] = max(entry[1], fetched)
    return Batch(requests, {p: PartitionProgress(p, *e) for p, e in progress.items()}, letters)


def _pending_ids(batch: Batch) -> list[UUID]:
    ids: list[UUID] = []
    for request in batch.requests:
        event = request.event
        # The exact type, as Ledger.decide does: isinstance against a pydantic model runs its metaclass's
        # Python-level check for every type that does not match.
        if type(event) is PaymentPostRequested or type(event) is PaymentVoidRequested:
            ids.append(event.pending_id)
        elif type(event) is PaymentRequested and event.pending:
            ids.append(event.event_id)  # a duplicate of a pending request reports its state
    return ids


def _tenant_outcomes(requests_topic: str, tenant: str) -> str:
    """The tenant's outcomes topic in the deployment whose requests topic is `requests_topic`."""
    return requests_topic.removesuffix(PAYMENT_REQUESTS.name) + tenant_outcomes_name(tenant)


def _partition_clocks(clocks: dict[ClockKey, datetime]) -> dict[int, datetime]:
    """The latest producer clock per partition (what ledger_offsets.clock shows operators)."""
    latest: dict[int, datetime] = {}
    for (partition, _), clock in clocks.items():
        if partition not in latest or latest[partition] < clock:
            latest[partition] = clock
    return latest


@dataclass(slots=True)
class OutboxMessages:
    """A batch's outcome messages as the outbox stores them, built a slice at a time."""

    topic: str  # the requests topic (a tenant's outcomes topic is named after it)
    keys: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    copies: list[Letter] = field(default_factory=list)  # a tenant's own requests' outcomes, also to its topic
    results: Counter[str] = field(default_factory=Counter)  # result code -> requests
    expired: int = 0

    def add(self, outcomes: list[Decision | Expired]) -> None:
        """Encodes outcomes (in order) and counts them."""
        for outcome in outcomes:
            if isinstance(outcome, Expired):
                key, value = expiry_outcome_bytes(outcome.pending, outcome.transfer_id)
                self.expired += 1
                tenant = clock_tenant(outcome.pending.source_producer)
            else:
                key, value = outcome_bytes(outcome)
                self.results[outcome.result] += 1
                tenant = outcome.request.tenant
            if tenant is not None:
                self.copies.append(Letter(key.encode(), (), value, topic=_tenant_outcomes(self.topic, tenant)))
            self.keys.append(key)
            self.payloads.append(value)


async def _encode_while_writing(connection: asyncpg.Connection, effects: Effects, messages: OutboxMessages) -> None:
    """Writes the batch's rows and encodes its outcomes at the same time: the outcomes are encoded
    a slice at a time, and between slices the writer sends its next rows, so PostgreSQL stores
    them (on another core) while this process encodes. Same transaction, same rows, same order."""
    writing = asyncio.ensure_future(repository.write_effects(connection, effects=effects))
    outcomes = effects.outcomes
    try:
        for start in range(0, len(outcomes), OUTCOMES_PER_SLICE):
            await give_way()  # the writer's turn
            messages.add(outcomes[start : start + OUTCOMES_PER_SLICE])
    except BaseException:
        await asyncio.wait([writing])  # the connection finishes its statement; the transaction rolls back
        raise
    await writing


async def settle_batch(connection: asyncpg.Connection, *, group: str, topic: str, batch: Batch) -> BatchResult:
    """Decides and writes one batch in one transaction; returns what to relay."""
    async with connection.transaction():
        stored = await repository.lock_offsets(connection, group=group, topic=topic, partitions=batch.progress)
        for partition, progress in batch.progress.items():
            if partition not in stored or stored[partition][0] != progress.start_offset:
                return BatchResult("fenced")
        clocks = await repository.select_clocks(connection, group=group, topic=topic, partitions=batch.progress)
        now = datetime.now(UTC)  # only widens what the skew bound accepts (domain.timely)
        prior = await repository.select_prior_requests(connection, ids=[r.event.event_id for r in batch.requests])
        pending = await repository.lock_pending(
            connection, ids=_pending_ids(batch), clocks=reachable_clocks(batch.requests, clocks, now)
        )
        names = set(batch.accounts)
        for item in pending.values():
            names.update((item.debit_account_id, item.credit_account_id))
        accounts = await repository.lock_accounts(connection, ids=names)
        owners = {}
        if any(r.tenant is not None for r in batch.requests):
            owners = await repository.select_owners(connection, ids=names)
        ledger = Ledger(accounts=accounts, pending=pending, prior=prior, clocks=dict(clocks), now=now, owners=owners)
        for request in batch.requests:
            ledger.decide(request)
        messages = OutboxMessages(topic)
        await _encode_while_writing(connection, ledger.effects, messages)
        moved = {k: c for k, c in ledger.clocks.items() if clocks.get(k) != c}
        await repository.upsert_clocks(connection, group=group, topic=topic, clocks=moved)
        keys, payloads = messages.keys, messages.payloads
        letters = batch.letters + messages.copies
        outbox_id = await repository.insert_outbox(connection, keys=keys, payloads=payloads, letters=letters)
        duplicates = Counter(
            d.request.partition for d in ledger.effects.outcomes if isinstance(d, Decision) and d.duplicate
        )
        partition_clocks = _partition_clocks(ledger.clocks)
        rows = [
            (
                p.partition,
                p.next_offset,
                partition_clocks.get(p.partition),
                p.messages,
                duplicates.get(p.partition, 0),
                p.dead_lettered,
            )
            for p in batch.progress.values()
        ]
        await repository.advance_offsets(connection, group=group, topic=topic, rows=rows)
    committed = None if outbox_id is None else Committed(outbox_id, keys, payloads, letters)
    return BatchResult(
        "settled",
        committed,
        len(ledger.effects.transfers),
        messages.results,
        messages.expired,
        partition_clocks,
        frozenset(accounts),
    )
