"""Background work yielding to the batch in flight.

While a batch's transaction waits on PostgreSQL, the settler parses the next fetch, encodes
outcomes and the relay publishes the last batch, each in slices with a turn of the event loop in
between. One `asyncio.sleep(0)` was not enough: the loop runs the callbacks that were ready when it
polled, in order, and the slice's own resumption was queued before PostgreSQL's answer arrived, so
the next slice ran before the transaction could send its next statement — about 13 µs per payment
of a ~55 µs chain (bench/RESULTS.md, "Ledger CPU", 2026-12-02).
"""

from __future__ import annotations

import asyncio
from typing import Final

# Loop iterations to yield between two slices: one for the poll that queues the socket's callback,
# one for that callback (it completes the statement's future), one for the woken task, which then
# sends its next statement before the slice goes on.
GIVE_WAY_TURNS: Final = 3


async def give_way() -> None:
    """Yields long enough that a task woken by I/O that arrived during the last slice runs first."""
    for _ in range(GIVE_WAY_TURNS):
        await asyncio.sleep(0)
