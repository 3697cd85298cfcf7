"""The ledger's offset lookups are bounded by `lookups.OFFSETS_WAIT_S`, not by aiokafka's request
timeout: a leader cut off the network answers nothing, and the settler's loop must get a KafkaError
it retries (tests/integration/test_cluster_partition.py runs the real cut)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from consumers.ledger import lookups
from consumers.ledger.lookups import answered

BOUND_S = 0.05


class SilentConsumer:
    """A consumer whose leader never answers an offsets request."""

    def __init__(self) -> None:
        self.cancelled = False

    async def end_offsets(self, _tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            await asyncio.sleep(3_600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("never answers")


@pytest.fixture(autouse=True)
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookups, "OFFSETS_WAIT_S", BOUND_S)


async def test_an_answer_within_the_bound_is_returned() -> None:
    async def lookup() -> dict[int, int]:
        await asyncio.sleep(0)
        return {0: 42}

    assert await answered(lookup(), "end offsets") == {0: 42}


async def test_no_answer_is_a_kafka_error_that_names_the_lookup_and_cancels_it() -> None:
    consumer = SilentConsumer()
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="the requests topic's end offsets") as raised:
        await answered(consumer.end_offsets([]), "the requests topic's end offsets")
    assert time.monotonic() - started < 1.0  # the bound, not aiokafka's 40 s
    assert isinstance(raised.value, KafkaError)  # what the settler's loop pauses on and retries
    assert consumer.cancelled, "the request left behind is cancelled, not left running"
