"""Offset lookups with a bound the caller chooses, not aiokafka's request timeout.

aiokafka asks each partition's leader as its metadata names it, and keeps asking until its request
timeout (40 s) is spent. A leader cut off the network (not dead: nothing refuses the connection)
answers nothing, and until the client's metadata is refreshed (`infra/kafka_clients.py`,
`METADATA_MAX_AGE_MS`, 10 s) it keeps being asked: settling stood still for 40 s at a time, and the
views consumer died of the 40 s timeout (tests/integration/test_cluster_partition.py). Bounded here,
a lookup that gets no answer fails as a KafkaError: the ledger's loop pauses and retries it (bounded
attempts), `patiently` asks again itself for the other consumers, and by then the metadata names the
new leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiokafka.errors import KafkaError, KafkaTimeoutError

OFFSETS_WAIT_S: Final = 5.0  # a healthy broker answers a ListOffsets request in milliseconds
# The ledger's, the views' and the metrics' aiokafka consumers give up on any request after this
# (aiokafka's default: 40 s). The metadata refresh picks a broker at random, the cut-off one too, and
# waited out the whole request timeout there before it asked another: 40 s more of the old leaders.
# (Producers keep aiokafka's: for them it is also how long a broker may take to gather acks=all.)
REQUEST_TIMEOUT_MS: Final = 10_000
LOOKUP_ATTEMPTS_MAX: Final = 24  # `patiently`: about two minutes of unanswered lookups, then the error
RETRY_PAUSE_S: Final = 0.5

T = TypeVar("T")


async def answered(lookup: Awaitable[T], what: str) -> T:
    """The lookup's answer, or KafkaTimeoutError naming `what` after OFFSETS_WAIT_S."""
    try:
        return await asyncio.wait_for(lookup, OFFSETS_WAIT_S)
    except TimeoutError as error:
        waited = f"{OFFSETS_WAIT_S:.0f} s"
        raise KafkaTimeoutError(f"no answer for {what} in {waited} (a partition leader unreachable?)") from error


async def patiently(lookup: Callable[[], Awaitable[T]], what: str, log: logging.Logger) -> T:
    """The answer of `lookup()`, asked again (after a short pause, each time bounded by `answered`)
    while the leader it goes to does not answer or cannot be reached; the last error after
    LOOKUP_ATTEMPTS_MAX attempts, and at once an error no retry can mend (an ACL refusing, say)."""
    for attempt in range(1, LOOKUP_ATTEMPTS_MAX):
        try:
            return await answered(lookup(), what)
        except KafkaError as error:
            if not (error.retriable or isinstance(error, KafkaTimeoutError)):
                raise
            log.warning("%s: %s; asking again (%d/%d)", what, error, attempt, LOOKUP_ATTEMPTS_MAX)
            await asyncio.sleep(RETRY_PAUSE_S)
    return await answered(lookup(), what)  # the last attempt: its error is the caller's
