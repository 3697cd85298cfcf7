"""How a batch survives failures: database outages are waited out, refused batches split up.

A batch that PostgreSQL refuses with a data or constraint error `BATCH_ATTEMPTS_MAX` times is
settled one message at a time; a request that still fails alone goes to the dead-letter topic
as `retries_exhausted` and its offset moves on, so one bad row never stalls the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import asyncpg

from consumers.ledger.batch import Batch, BatchResult, PartitionProgress, settle_batch
from consumers.ledger.deadletter import dead_letter
from consumers.ledger.domain import Request
from consumers.ledger.merge import Item
from consumers.ledger.outbox import DB_TRANSIENT, send_all
from consumers.ledger.reading import Poison
from infra.errors import SandboxError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from consumers.ledger.outbox import OutcomeRelay

log = logging.getLogger(__name__)

BATCH_ATTEMPTS_MAX: Final = 3  # a batch failing this often with a data error is split up
DB_UNAVAILABLE_ATTEMPTS_MAX: Final = 120  # × DB_RETRY_WAIT_S: how long PostgreSQL may be away
DB_RETRY_WAIT_S: Final = 0.5
# The batch itself cannot be written (a value PostgreSQL refuses): split it, then dead-letter.
DB_DATA: Final = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


@dataclass(slots=True)
class RunSummary:
    """What one `settle` run did."""

    batches: int = 0
    requests: int = 0
    transfers: int = 0
    dead_lettered: int = 0
    fenced: int = 0


class RetryingSettle:
    """Mixed into the settler: settling with retries, splitting and dead-lettering."""

    topic: str
    group: str
    dead_letter_topic: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    relay: OutcomeRelay
    positions: dict[int, int]
    summary: RunSummary

    def _letter(self, partition: int, offset: int, poison: Poison) -> tuple[bytes, bytes]:
        return dead_letter(
            reason=poison.reason,  # type: ignore[arg-type]
            detail=poison.detail,
            topic=self.topic,
            partition=partition,
            offset=offset,
            group=self.group,
            key=poison.key,
            value=poison.value,
            now=datetime.now(UTC),
        )

    async def _settle_with_retries(self, batch: Batch, items: list[Item[Request | Poison]]) -> BatchResult:
        """Settles a batch, waiting out database restarts; splits a batch PostgreSQL refuses."""
        data_failures = 0
        for _ in range(DB_UNAVAILABLE_ATTEMPTS_MAX):
            try:
                async with self.pool.acquire() as connection:
                    result = await settle_batch(connection, group=self.group, topic=self.topic, batch=batch)
                self.summary.transfers += result.transfers
                return result
            except DB_DATA as error:
                data_failures += 1
                log.warning("batch refused by PostgreSQL (%s/%s): %s", data_failures, BATCH_ATTEMPTS_MAX, error)
                if data_failures >= BATCH_ATTEMPTS_MAX:
                    return await self._settle_one_by_one(batch, items, error)
            except DB_TRANSIENT as error:
                log.warning("PostgreSQL unavailable, retrying the batch: %s", error)
                await asyncio.sleep(DB_RETRY_WAIT_S)
        # Nothing of the batch was committed; a restart resumes from the database's offsets.
        raise SandboxError(
            "PostgreSQL stayed unavailable while settling a batch",
            "check the database (`kpsandbox status`), then run `kpsandbox settle` again: it resumes exactly",
        )

    async def _settle_one_by_one(
        self, batch: Batch, items: list[Item[Request | Poison]], error: Exception
    ) -> BatchResult:
        """Settles each message alone; a request that still fails goes to the dead-letter topic."""
        if len(items) == 1 and isinstance(items[0].payload, Request):
            item = items[0]
            detail = f"PostgreSQL refused it {BATCH_ATTEMPTS_MAX} times: {error}"
            letter = self._letter(item.partition, item.offset, Poison("retries_exhausted", detail, None, item.raw))
            await send_all(self.producer, topic=self.dead_letter_topic, keys=[letter[0].decode()], payloads=[letter[1]])
            self.summary.dead_lettered += 1
            start = batch.progress[item.partition].start_offset
            alone = Batch([], {item.partition: PartitionProgress(item.partition, start, item.offset + 1, 1, 1)})
            return await self._settle_with_retries(alone, [])
        for item in items:
            if item.partition not in self.positions:
                continue  # revoked meanwhile
            is_request = isinstance(item.payload, Request)
            progress = PartitionProgress(
                item.partition, self.positions[item.partition], item.offset + 1, 1, 0 if is_request else 1
            )
            single = Batch([item.payload] if isinstance(item.payload, Request) else [], {item.partition: progress})
            result = await self._settle_with_retries(single, [item])
            if result.result == "fenced":
                return result
            self.positions[item.partition] = item.offset + 1
            if result.outbox_id is not None:
                await self.relay.publish(outbox_id=result.outbox_id, keys=result.keys, payloads=result.payloads)
        return BatchResult("settled")
