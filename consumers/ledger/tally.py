"""What one ledger process has done, told two ways: the run summary `settle` prints, and the
gauges and counters on its /metrics. The settler reports each batch here; nothing else writes them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from consumers.ledger.batch import Batch, BatchResult
from consumers.ledger.observe import LedgerMetrics
from consumers.ledger.positions import Positions
from consumers.ledger.summary import RunSummary

GAUGES_REFRESH_S: Final = 1.0  # lag, clocks and assignment on /metrics
OUTBOX_REFRESH_S: Final = 5.0  # outbox depth (one query)


class Tally:
    """The run summary and the /metrics of one process; owns the partition clocks /metrics shows."""

    def __init__(self, group: str) -> None:
        self.metrics = LedgerMetrics(group=group)
        self.summary = RunSummary()
        self.clocks: dict[int, datetime] = {}  # partition -> latest producer clock
        self._gauges_at = 0.0
        self._outbox_at = 0.0

    def settled(self, batch: Batch, result: BatchResult, seconds: float) -> None:
        """One batch committed (or dead-lettered only)."""
        summary = self.summary
        summary.batches += 1
        summary.requests += len(batch.requests)
        summary.transfers += result.transfers
        summary.dead_lettered += len(batch.letters)
        summary.expired += result.expired
        self.clocks.update(result.clocks)
        self.metrics.batch_settled(
            results=result.results, requests=len(batch.requests), transfers=result.transfers, seconds=seconds
        )
        for letter in batch.letters:
            self.metrics.dead_lettered(letter.reason)
        if result.expired:
            self.metrics.expired(result.expired)

    def fenced(self) -> None:
        """A batch another process had settled first (its partitions moved meanwhile)."""
        self.summary.fenced += 1
        self.metrics.batch_fenced()

    async def refresh(
        self,
        positions: Positions,
        ends: dict[int, int | None],
        outbox_depth: Callable[[], Awaitable[tuple[int, float]]],
    ) -> None:
        """The gauges, at most every GAUGES_REFRESH_S (the outbox's every OUTBOX_REFRESH_S)."""
        now = time.monotonic()
        if now - self._gauges_at >= GAUGES_REFRESH_S:
            self._gauges_at = now
            self.metrics.set_assigned(positions.assigned())
            known = {p: e for p, e in ends.items() if e is not None}
            for partition, lag in positions.behind(known).items():
                self.metrics.set_partition(partition, lag=lag, clock=self.clocks.get(partition))
        if now - self._outbox_at >= OUTBOX_REFRESH_S:
            self._outbox_at = now
            rows, oldest_age_s = await outbox_depth()
            self.metrics.set_outbox(rows=rows, oldest_age_s=oldest_age_s)
