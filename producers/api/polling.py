"""`GET …?wait=N`: read a row again and again until its status is final or N seconds have passed.

The views consumer writes statuses into PostgreSQL; a waiting request re-reads its row every
WAIT_POLL_S (bounded by the wait it was given, itself at most WAIT_MAX_S), so it answers within
about WAIT_POLL_S of the status becoming final and never holds a database connection while it sleeps.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from schemas.api.payments import WAIT_MAX_S

WAIT_POLL_S: Final = 0.05
WAIT_POLLS_MAX: Final = math.ceil(WAIT_MAX_S / WAIT_POLL_S) + 1  # the loop's named bound

T = TypeVar("T")


async def poll_until(read: Callable[[], Awaitable[T]], *, done: Callable[[T], bool], wait_s: float) -> T:
    """`read()` until `done` says yes or `wait_s` (at most WAIT_MAX_S) has passed; the last value read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait_s, WAIT_MAX_S)
    current = await read()
    for _ in range(WAIT_POLLS_MAX):
        remaining = deadline - loop.time()
        if done(current) or remaining <= 0:
            break
        await asyncio.sleep(min(WAIT_POLL_S, remaining))
        current = await read()
    return current
