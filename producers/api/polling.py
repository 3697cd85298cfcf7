"""`GET …?wait=N`: read a row again and again until its status is final or N seconds have passed.

The views consumer writes statuses into PostgreSQL; a waiting request re-reads its row every
WAIT_POLL_S (bounded by the wait it was given, itself at most WAIT_MAX_S), so it answers within
about WAIT_POLL_S of the status becoming final and never holds a database connection while it sleeps.
A payment's waiter is also woken by PostgreSQL's notification of the change (payment_changes.py), and
then re-reads at once; it falls back to reading every WATCHED_POLL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from schemas.api.payments import WAIT_MAX_S

WAIT_POLL_S: Final = 0.05
WATCHED_POLL_S: Final = 0.5  # a waiter woken by notifications still re-reads this often
WAIT_POLLS_MAX: Final = math.ceil(WAIT_MAX_S / WAIT_POLL_S) + 1  # the loop's named bound

T = TypeVar("T")


async def poll_until(
    read: Callable[[], Awaitable[T]], *, done: Callable[[T], bool], wait_s: float, changed: asyncio.Event | None = None
) -> T:
    """`read()` until `done` says yes or `wait_s` (at most WAIT_MAX_S) has passed; the last value read.
    With `changed` (set when the row may have changed: producers/api/payment_changes.py) it reads again
    as soon as the event is set, and otherwise every WATCHED_POLL_S; without it, every WAIT_POLL_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait_s, WAIT_MAX_S)
    if changed is not None:
        changed.clear()  # what was set before this read, the read sees
    current = await read()
    for _ in range(WAIT_POLLS_MAX):  # each pass waits a poll interval or consumes one change
        remaining = deadline - loop.time()
        if done(current) or remaining <= 0:
            break
        if changed is None:
            await asyncio.sleep(min(WAIT_POLL_S, remaining))
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(WATCHED_POLL_S, remaining)):
                    await changed.wait()
            changed.clear()
        current = await read()
    return current
