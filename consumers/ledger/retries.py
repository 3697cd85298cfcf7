"""How a batch survives failures: database outages are waited out, refused batches split up.

A batch that PostgreSQL refuses with a data or constraint error `BATCH_ATTEMPTS_MAX` times is
settled one message at a time; a request that still fails alone becomes a `retries_exhausted`
dead letter, committed with the offset that skips it, so one bad row never stalls the ledger.
Any other refusal (a read-only database, missing privileges) cannot heal by waiting: it stops
the process with a two-line error instead of spinning or hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg

from consumers.ledger.batch import Batch, BatchResult, PartitionProgress, settle_batch
from consumers.ledger.deadletter import Letter, dead_letter
from consumers.ledger.merge import Item
from consumers.ledger.outbox import DB_TRANSIENT
from consumers.ledger.reading import Poison
from consumers.ledger.records import Request
from infra.errors import SandboxError

log = logging.getLogger(__name__)

BATCH_ATTEMPTS_MAX: Final = 3  # a batch failing this often with a data error is split up
DB_UNAVAILABLE_ATTEMPTS_MAX: Final = 120  # × DB_RETRY_WAIT_S: how long PostgreSQL may be away
DB_RETRY_WAIT_S: Final = 0.5
# The batch itself cannot be written (a value PostgreSQL refuses): split it, then dead-letter.
DB_DATA: Final = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

Written = tuple[Batch, BatchResult]


class BatchWriter:
    """Writes batches to PostgreSQL with the retry, split and dead-letter policy above."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        group: str,
        topic: str,
        on_retry: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.pool = pool
        self.group = group
        self.topic = topic
        self.on_retry = on_retry

    def letter(self, item: Item[Request | Poison], reason: str, detail: str) -> Letter:
        """The dead letter of one message read from the requests topic (original key and headers kept)."""
        return dead_letter(
            reason=reason,  # type: ignore[arg-type]
            detail=detail,
            topic=self.topic,
            partition=item.partition,
            offset=item.offset,
            group=self.group,
            key=item.key,
            value=item.raw,
            headers=item.headers,
            now=datetime.now(UTC),
        )

    async def write(self, batch: Batch, items: list[Item[Request | Poison]]) -> list[Written]:
        """Settles a batch; returns what was committed, in order (several batches if it had to split)."""
        data_failures = 0
        for _ in range(DB_UNAVAILABLE_ATTEMPTS_MAX):
            try:
                return [(batch, await self._once(batch))]
            except DB_DATA as error:
                data_failures += 1
                self.on_retry("batch_refused")
                log.warning("batch refused by PostgreSQL (%s/%s): %s", data_failures, BATCH_ATTEMPTS_MAX, error)
                if data_failures >= BATCH_ATTEMPTS_MAX:
                    return await self._one_by_one(batch, items, error)
            except DB_TRANSIENT as error:
                self.on_retry("db_unavailable")
                log.warning("PostgreSQL unavailable, retrying the batch: %s", error)
                await asyncio.sleep(DB_RETRY_WAIT_S)
            except asyncpg.PostgresError as error:
                raise SandboxError(
                    f"PostgreSQL refused the ledger's transaction: {type(error).__name__}: {error}",
                    "make the database writable for the ledger's user (not read-only, enough privileges), "
                    "then run `kpsandbox settle` again: it resumes exactly where the database says",
                ) from error
        # Nothing of the batch was committed; a restart resumes from the database's offsets.
        raise SandboxError(
            "PostgreSQL stayed unavailable while settling a batch",
            "check the database (`kpsandbox status`), then run `kpsandbox settle` again: it resumes exactly",
        )

    async def _once(self, batch: Batch) -> BatchResult:
        async with self.pool.acquire() as connection:
            return await settle_batch(connection, group=self.group, topic=self.topic, batch=batch)

    async def _one_by_one(self, batch: Batch, items: list[Item[Request | Poison]], error: Exception) -> list[Written]:
        """Settles each message alone; a request that still fails alone is dead-lettered."""
        if len(items) == 1 and isinstance(items[0].payload, Request) and not batch.letters:
            item = items[0]
            detail = f"PostgreSQL refused it {BATCH_ATTEMPTS_MAX} times: {error}"
            start = batch.progress[item.partition].start_offset
            progress = {item.partition: PartitionProgress(item.partition, start, item.offset + 1, 1, 1)}
            alone = Batch([], progress, [self.letter(item, "retries_exhausted", detail)])
            return await self.write(alone, [])
        if len(items) <= 1:  # nothing left to split: only offsets or one dead letter, and still refused
            raise SandboxError(
                f"PostgreSQL refuses even the smallest step of the ledger (offsets, a dead letter): {error}",
                "check the ledger's tables (`kpsandbox ledger check`) and PostgreSQL's log, then settle again",
            ) from error
        starts = {p: progress.start_offset for p, progress in batch.progress.items()}
        written: list[Written] = []
        for item in items:
            if item.partition not in starts:
                continue
            is_request = isinstance(item.payload, Request)
            progress = {
                item.partition: PartitionProgress(
                    item.partition, starts[item.partition], item.offset + 1, 1, 0 if is_request else 1
                )
            }
            if isinstance(item.payload, Request):
                single = Batch([item.payload], progress)
            else:
                single = Batch([], progress, [self.letter(item, item.payload.reason, item.payload.detail)])
            results = await self.write(single, [item])
            written.extend(results)
            if results[-1][1].result == "fenced":
                return written
            starts[item.partition] = item.offset + 1
        # Partitions that also skipped transaction markers or aborted records after their messages.
        rest = {
            p: PartitionProgress(p, starts[p], progress.next_offset, 0, 0)
            for p, progress in batch.progress.items()
            if progress.next_offset > starts[p]
        }
        if rest:
            written.extend(await self.write(Batch([], rest), []))
        return written
