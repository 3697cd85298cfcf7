"""Offset lookups with a bound the settler chooses, not aiokafka's request timeout.

aiokafka asks each partition's leader as its metadata names it, and keeps asking until its request
timeout (40 s) is spent. A leader cut off the network (not dead: nothing refuses the connection)
answers nothing, and until the client's metadata is refreshed (`infra/kafka_clients.py`,
`METADATA_MAX_AGE_MS`, 10 s) it keeps being asked: settling stood still for 40 s at a time
(tests/integration/test_cluster_partition.py). Bounded here, a lookup that gets no answer fails as a
KafkaError: the settler's loop pauses and retries it (bounded attempts), and by then the metadata
names the new leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

from aiokafka.errors import KafkaTimeoutError

OFFSETS_WAIT_S: Final = 5.0  # a healthy broker answers a ListOffsets request in milliseconds
# The ledger's aiokafka consumers give up on any request after this (aiokafka's default: 40 s). The
# metadata refresh picks a broker at random, the cut-off one too, and waited out the whole request
# timeout there before it asked another: 40 s more of the old leaders.
REQUEST_TIMEOUT_MS: Final = 10_000

T = TypeVar("T")


async def answered(lookup: Awaitable[T], what: str) -> T:
    """The lookup's answer, or KafkaTimeoutError naming `what` after OFFSETS_WAIT_S."""
    try:
        return await asyncio.wait_for(lookup, OFFSETS_WAIT_S)
    except TimeoutError as error:
        waited = f"{OFFSETS_WAIT_S:.0f} s"
        raise KafkaTimeoutError(f"no answer for {what} in {waited} (a partition leader unreachable?)") from error
