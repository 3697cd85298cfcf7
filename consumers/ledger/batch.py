"""Settling one batch: lock, decide with the pure rules, write everything in one transaction.

The transaction starts by locking the batch's offset rows and checking that the database still
says what this process believed when it read the batch. If another process moved them (it took
the partition over in a rebalance), nothing is written: the batch is `fenced` and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from consumers.ledger import repository
from consumers.ledger.domain import Decision, Ledger, Request, accounts_named
from consumers.ledger.outcomes import outcome_bytes
from schemas.payments import PaymentPostRequested, PaymentRequested, PaymentVoidRequested


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
    """Requests in decision order, and the progress of every partition they came from."""

    requests: list[Request]
    progress: dict[int, PartitionProgress]


@dataclass(slots=True)
class BatchResult:
    """`settled` with the outcomes to relay, or `fenced` (another process owns a partition)."""

    result: Literal["settled", "fenced"]
    decisions: list[Decision] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    outbox_id: int | None = None
    transfers: int = 0


def _batch_clocks(batch: Batch, stored: dict[int, tuple[int, datetime | None]]) -> dict[int, datetime]:
    """The furthest each partition's clock can reach in this batch (bounds the expiry scan)."""
    clocks = {p: c for p, (_, c) in stored.items() if c is not None}
    for request in batch.requests:
        at = request.event.occurred_at
        if request.partition not in clocks or clocks[request.partition] < at:
            clocks[request.partition] = at
    return clocks


def _pending_ids(batch: Batch) -> list[UUID]:
    ids: list[UUID] = []
    for request in batch.requests:
        event = request.event
        if isinstance(event, PaymentPostRequested | PaymentVoidRequested):
            ids.append(event.pending_id)
        elif isinstance(event, PaymentRequested) and event.pending:
            ids.append(event.event_id)  # a duplicate of a pending request reports its state
    return ids


async def settle_batch(connection: asyncpg.Connection, *, group: str, topic: str, batch: Batch) -> BatchResult:
    """Decides and writes one batch in one transaction; returns what to relay."""
    async with connection.transaction():
        stored = await repository.lock_offsets(connection, group=group, topic=topic, partitions=batch.progress)
        for partition, progress in batch.progress.items():
            if partition not in stored or stored[partition][0] != progress.start_offset:
                return BatchResult("fenced")
        prior = await repository.select_prior_requests(connection, ids=[r.event.event_id for r in batch.requests])
        pending = await repository.lock_pending(
            connection, ids=_pending_ids(batch), clocks=_batch_clocks(batch, stored)
        )
        names = {name for r in batch.requests for name in accounts_named(r.event)}
        for item in pending.values():
            names.update((item.debit_account_id, item.credit_account_id))
        accounts = await repository.lock_accounts(connection, ids=names)
        clocks = {p: c for p, (_, c) in stored.items() if c is not None}
        ledger = Ledger(accounts=accounts, pending=pending, prior=prior, clocks=clocks)
        decisions = [ledger.decide(request) for request in batch.requests]
        await repository.write_effects(connection, effects=ledger.effects)
        outcomes = [outcome_bytes(d) for d in decisions]
        keys = [k for k, _ in outcomes]
        payloads = [v for _, v in outcomes]
        outbox_id = await repository.insert_outbox(connection, keys=keys, payloads=payloads)
        duplicates: dict[int, int] = {}
        for decision in decisions:
            if decision.duplicate:
                duplicates[decision.request.partition] = duplicates.get(decision.request.partition, 0) + 1
        rows = [
            (
                p.partition,
                p.next_offset,
                ledger.clocks.get(p.partition),
                p.messages,
                duplicates.get(p.partition, 0),
                p.dead_lettered,
            )
            for p in batch.progress.values()
        ]
        await repository.advance_offsets(connection, group=group, topic=topic, rows=rows)
    return BatchResult("settled", decisions, keys, payloads, outbox_id, len(ledger.effects.transfers))
