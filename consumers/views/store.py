"""The views consumer's SQL: its offsets (api_views_offsets) and the API rows it updates
(api_payments, api_top_ups; migration 0022; api_refunds, 0024). One repository over one connection; the consumer
calls it inside one transaction per batch, so the status changes and the offsets that produced
them are committed together — or not at all. So are the webhook events each change announces
(consumers/webhooks/store.py): an outcome applied twice changes nothing, and announces nothing, twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final
from uuid import UUID

import asyncpg
from asyncpg.transaction import Transaction

from consumers.views.transitions import Change, Target
from consumers.webhooks.store import events_of
from infra.webhook_events import NewEvent, record_events

ENSURE_OFFSETS: Final = """
INSERT INTO api_views_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, $2, part, start FROM unnest($3::int[], $4::bigint[]) AS s(part, start)
ON CONFLICT DO NOTHING
"""
SELECT_OFFSETS: Final = """
SELECT partition, next_offset FROM api_views_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])
"""
# Fencing: a second consumer of the group waits here, then sees how far the first one got.
LOCK_OFFSETS: Final = """
SELECT partition, next_offset FROM api_views_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])
ORDER BY partition FOR UPDATE
"""
ADVANCE_OFFSETS: Final = """
UPDATE api_views_offsets AS o SET next_offset = a.next_offset, applied = o.applied + a.applied
FROM unnest($3::int[], $4::bigint[], $5::bigint[]) AS a(part, next_offset, applied)
WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = a.part
"""
# Which of these requests the API made, and for what. Simulation traffic matches nothing.
SELECT_TARGETS: Final = """
SELECT request_event_id, 'payment' AS action, id AS object_id FROM api_payments
WHERE request_event_id = ANY($1::uuid[])
UNION ALL
SELECT request_event_id, action, payment_id FROM api_payment_actions WHERE request_event_id = ANY($1::uuid[])
UNION ALL
SELECT request_event_id, 'top_up', id FROM api_top_ups WHERE request_event_id = ANY($1::uuid[])
UNION ALL
SELECT request_event_id, 'refund', id FROM api_refunds WHERE request_event_id = ANY($1::uuid[])
"""
UPDATE_PAYMENT: Final = """
UPDATE api_payments
SET status = $2, amount_captured = coalesce($3, amount_captured), failure_code = $4, failure_message = $5,
    awaiting_event_id = NULL, updated_at = now()
WHERE id = $1 AND awaiting_event_id = $6
"""
# An expiry ends any authorisation not ended yet, whatever request it awaits.
EXPIRE_PAYMENT: Final = """
UPDATE api_payments
SET status = $2, awaiting_event_id = NULL, updated_at = now()
WHERE id = $1 AND capture_method = 'manual' AND status IN ('requires_capture', 'processing')
"""
UPDATE_TOP_UP: Final = """
UPDATE api_top_ups SET status = $2, failure_code = $3, failure_message = $4, updated_at = now()
WHERE id = $1 AND status = 'processing'
"""
# A refund's outcome, and with it its payment's refund columns: a success adds to amount_refunded,
# a failure releases the reservation the API made (producers/api/refund_rows.py). Refund row first,
# then payment, the order the API's own undo takes too.
UPDATE_REFUND: Final = """
WITH refund AS (
    UPDATE api_refunds SET status = $2, failure_code = $3, failure_message = $4, updated_at = now()
    WHERE id = $1 AND status = 'processing'
    RETURNING payment_id, amount
)
UPDATE api_payments AS p
SET amount_refunded = p.amount_refunded + CASE WHEN $2 = 'succeeded' THEN refund.amount ELSE 0 END,
    amount_refund_reserved = p.amount_refund_reserved - CASE WHEN $2 = 'failed' THEN refund.amount ELSE 0 END,
    updated_at = now()
FROM refund WHERE p.id = refund.payment_id
"""


class ViewsStore:
    """The views consumer's reads and writes, on a connection it does not own."""

    def __init__(self, connection: asyncpg.Connection, *, group: str, topic: str) -> None:
        self._db = connection
        self._group = group
        self._topic = topic

    def transaction(self) -> Transaction:
        """A transaction on the store's connection: one batch's changes and offsets commit together."""
        return self._db.transaction()

    async def ensure_offsets(self, *, starts: dict[int, int]) -> dict[int, int]:
        """Creates missing offset rows at `starts`; the stored next offset of each partition."""
        parts = sorted(starts)
        await self._db.execute(ENSURE_OFFSETS, self._group, self._topic, parts, [starts[p] for p in parts])
        rows = await self._db.fetch(SELECT_OFFSETS, self._group, self._topic, parts)
        return {row["partition"]: row["next_offset"] for row in rows}

    async def lock_offsets(self, *, partitions: Iterable[int]) -> dict[int, int]:
        """Locks the partitions' offset rows until the transaction ends; their next offsets."""
        rows = await self._db.fetch(LOCK_OFFSETS, self._group, self._topic, sorted(partitions))
        return {row["partition"]: row["next_offset"] for row in rows}

    async def advance_offsets(self, *, next_offsets: dict[int, int], applied: dict[int, int]) -> None:
        """Moves the partitions' offsets to `next_offsets`, counting the changes `applied` on each."""
        parts = sorted(next_offsets)
        await self._db.execute(
            ADVANCE_OFFSETS,
            self._group,
            self._topic,
            parts,
            [next_offsets[p] for p in parts],
            [applied.get(p, 0) for p in parts],
        )

    async def targets(self, *, request_event_ids: Sequence[UUID]) -> dict[UUID, Target]:
        """The API objects these requests belong to; requests the API did not make are absent."""
        if not request_event_ids:
            return {}
        rows = await self._db.fetch(SELECT_TARGETS, list(request_event_ids))
        return {row["request_event_id"]: Target(row["action"], row["object_id"]) for row in rows}

    async def apply(self, change: Change, *, announced: list[NewEvent]) -> bool:
        """Writes one status change and adds the events it announces to `announced`; False when its guard
        refused it (a duplicate or late outcome)."""
        if change.table in ("top_up", "refund"):
            status = await self._db.execute(
                UPDATE_TOP_UP if change.table == "top_up" else UPDATE_REFUND,
                change.object_id,
                change.status,
                change.failure_code,
                change.failure_message,
            )
        elif change.awaited is None:
            status = await self._db.execute(EXPIRE_PAYMENT, change.object_id, change.status)
        else:
            status = await self._db.execute(
                UPDATE_PAYMENT,
                change.object_id,
                change.status,
                change.amount_captured,
                change.failure_code,
                change.failure_message,
                change.awaited,
            )
        if status != "UPDATE 1":
            return False
        # The webhook events of the change, as the change left its object; `announce` records them.
        announced += await events_of(self._db, kind=change.table, object_id=change.object_id)
        return True

    async def announce(self, events: Sequence[NewEvent]) -> None:
        """Records a batch's webhook events and their deliveries in one statement: they commit with the
        changes and the offsets, or not at all."""
        if events:
            await record_events(self._db, events)
