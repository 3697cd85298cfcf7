"""Offset lookups are bounded by `lookups.OFFSETS_WAIT_S`, not by aiokafka's request timeout: a
leader cut off the network answers nothing, and the settler's loop must get a KafkaError it retries;
`patiently` retries for the views and metrics consumers itself (tests/integration/
test_cluster_partition.py runs the real cut)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError

from infra import kafka_lookups as lookups
from infra.kafka_lookups import answered, patiently

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
    monkeypatch.setattr(lookups, "RETRY_PAUSE_S", 0.0)
    monkeypatch.setattr(lookups, "LOOKUP_ATTEMPTS_MAX", 4)


class Leaders:
    """End offsets from a leader that answers only from the `answers_from`-th request on; before
    that each request is silent, or is refused with `refusal` if one is given."""

    def __init__(self, answers_from: int, refusal: KafkaError | None = None) -> None:
        self.answers_from = answers_from
        self.refusal = refusal
        self.asked = 0
        self.silent = SilentConsumer()

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        if self.asked >= self.answers_from:
            return dict.fromkeys(tps, 7)
        if self.refusal is not None:
            raise self.refusal
        return await self.silent.end_offsets(tps)


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


async def test_patiently_asks_again_until_the_new_leader_answers() -> None:
    """A silent leader, then a refused connection, then an answer: the answer, after three asks."""
    tps = [TopicPartition("t", 0)]
    silent, refused = SilentConsumer(), Leaders(answers_from=2, refusal=KafkaConnectionError("connection closed"))
    asked = 0

    async def lookup() -> dict[TopicPartition, int]:
        nonlocal asked
        asked += 1
        return await (silent if asked == 1 else refused).end_offsets(tps)

    assert await patiently(lookup, "the outcomes topic's end offsets", logging.getLogger("test")) == {tps[0]: 7}
    assert asked == 3 and silent.cancelled


async def test_patiently_gives_up_after_its_attempts_with_the_last_error() -> None:
    leaders = Leaders(answers_from=100)
    with pytest.raises(KafkaTimeoutError, match="the outcomes topic's end offsets"):
        await patiently(lambda: leaders.end_offsets([]), "the outcomes topic's end offsets", logging.getLogger("t"))
    assert leaders.asked == lookups.LOOKUP_ATTEMPTS_MAX


async def test_patiently_does_not_retry_what_no_retry_mends() -> None:
    leaders = Leaders(answers_from=2, refusal=TopicAuthorizationFailedError())
    with pytest.raises(TopicAuthorizationFailedError):
        await patiently(lambda: leaders.end_offsets([]), "end offsets", logging.getLogger("t"))
    assert leaders.asked == 1
