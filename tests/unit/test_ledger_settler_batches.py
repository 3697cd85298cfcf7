"""How the settler forms its batches while one is in PostgreSQL (fakes for Kafka and the batch; the
real loop runs against the real services in tests/integration/test_ledger_settle.py).

The next batch is taken when the batch in flight is done, not when it starts: a payment that arrives
while one batch runs goes into the very next batch instead of waiting a whole batch cycle more
(the paced latency in bench/RESULTS.md). Meanwhile the loop keeps fetching and parsing, but holds at
most one batch's worth beyond the one in flight, so memory stays bounded, unless the merge cannot
release that batch because an unread partition has nothing buffered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.ledger import intake as intake_module
from consumers.ledger.consumer import Settler
from consumers.ledger.merge import Item
from consumers.ledger.records import Request
from infra.settings import Settings
from tests.unit.ledger_support import START, payment_value

STEP_WAIT_S = 2.0  # a step that waits longer than this is blocked on the batch in flight


def _record(topic: str, offset: int) -> ConsumerRecord:
    value = payment_value(occurred_at=START + timedelta(seconds=offset))
    return ConsumerRecord(topic, 0, offset, 0, 0, b"acc_00000001", value, None, 12, len(value), ())


class NeverPaused:
    """The settler pauses full partitions; these fakes never fill up."""

    def paused(self) -> set[TopicPartition]:
        return set()

    def pause(self, *_tps: TopicPartition) -> None:
        pass

    def resume(self, *_tps: TopicPartition) -> None:
        pass


@dataclass
class FakeConsumer(NeverPaused):
    """Partition 0 of the requests topic: `arrive()` appends records, `getmany` hands over the new ones."""

    topic: str
    log: list[ConsumerRecord] = field(default_factory=list)
    fetched: int = 0  # the consumer's position
    fetches: int = 0

    def arrive(self, count: int) -> None:
        self.log += [_record(self.topic, len(self.log) + i) for i in range(count)]

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.fetches += 1
        new = self.log[self.fetched : self.fetched + max_records]
        self.fetched += len(new)
        return {TopicPartition(self.topic, 0): new} if new else {}

    async def position(self, _tp: TopicPartition) -> int:
        return self.fetched

    def last_stable_offset(self, _tp: TopicPartition) -> int:
        return len(self.log)

    def highwater(self, _tp: TopicPartition) -> int:
        return len(self.log)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self.topic, 0)}


@dataclass
class Harness:
    settler: Settler
    consumer: FakeConsumer
    batches: list[list[int]]  # the offsets of each batch, as it was handed to PostgreSQL
    gate: asyncio.Event  # set: the batch in flight commits
    go_at: list[int] = field(default_factory=list)  # batches begun each time the relay was told to go

    async def step(self, *, batch_size_max: int = 100) -> None:
        await asyncio.wait_for(self.settler._step(until_idle=False, batch_size_max=batch_size_max, idle=0), STEP_WAIT_S)


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Harness:
    settler = Settler(Settings(topic_prefix="batches."))
    consumer = FakeConsumer(settler.topic)

    async def depth() -> tuple[int, float]:
        return 0, 0.0

    async def caught_up() -> int:
        return 0

    async def backlog(*, older_than_s: float) -> int:
        return 0

    go_at: list[int] = []
    settler.clients = SimpleNamespace(  # type: ignore[assignment]
        consumer=consumer,
        relay=SimpleNamespace(depth=depth, go=lambda: go_at.append(len(harness.batches)), relay_backlog=backlog),
        accounts=SimpleNamespace(catch_up=caught_up),
    )
    settler.positions.assign(0, 0)
    harness = Harness(settler, consumer, [], asyncio.Event(), go_at)

    async def settle(items: list[Item[Request]], _skips: dict[int, int], _epoch: int) -> None:
        harness.batches.append([item.offset for item in items])
        await harness.gate.wait()
        harness.gate.clear()

    monkeypatch.setattr(settler, "_settle", settle)
    return harness


async def _until(condition: object, *, attempts: int = 100) -> None:
    for _ in range(attempts):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_what_arrives_while_a_batch_runs_goes_into_the_very_next_batch(harness: Harness) -> None:
    harness.consumer.arrive(3)
    await harness.step()
    await _until(lambda: harness.batches == [[0, 1, 2]])
    harness.consumer.arrive(2)
    await harness.step()  # fetched and parsed while the batch runs, but not yet taken
    harness.consumer.arrive(1)
    await harness.step()
    assert harness.batches == [[0, 1, 2]]
    assert len(harness.settler.merge) == 3
    harness.gate.set()
    await harness.step()
    await _until(lambda: len(harness.batches) == 2)
    assert harness.batches == [[0, 1, 2], [3, 4, 5]]


async def test_the_relay_publishes_once_the_next_batch_has_begun(harness: Harness) -> None:
    """After a commit, with the next batch buffered, the step takes it and lets it begin (its first
    statements go to PostgreSQL) before it tells the relay to publish; a step that waits for records
    with no batch in flight tells the relay before it waits."""
    harness.consumer.arrive(3)
    await harness.step(batch_size_max=3)
    assert harness.batches == [[0, 1, 2]] and harness.go_at == [0, 1]  # before waiting; once begun
    harness.consumer.arrive(3)
    await harness.step(batch_size_max=3)  # parsed while the batch runs: no word to the relay
    assert harness.go_at == [0, 1]
    harness.gate.set()  # the batch commits
    await harness.step(batch_size_max=3)
    assert harness.batches == [[0, 1, 2], [3, 4, 5]] and harness.go_at == [0, 1, 2]
    harness.gate.set()
    await harness.step(batch_size_max=3)  # nothing left to take: before waiting for more
    assert harness.go_at[:4] == [0, 1, 2, 2]


async def test_a_fetch_is_parsed_a_slice_at_a_time(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a batch in flight, parsing what one fetch brought gives the event loop a turn after every
    PARSED_PER_TURN records, so the batch's statements are not held up behind the whole fetch."""
    monkeypatch.setattr(intake_module, "PARSED_PER_TURN", 2)
    harness.consumer.arrive(1)
    await harness.step()
    await _until(lambda: harness.batches == [[0]])
    harness.consumer.arrive(7)
    seen: list[int] = []  # the merge's size each time another task got a turn
    stepping = asyncio.ensure_future(harness.step())
    while not stepping.done():
        seen.append(len(harness.settler.merge))
        await asyncio.sleep(0)
    await stepping
    assert len(harness.settler.merge) == 7
    assert len({n for n in seen if 0 < n < 7}) >= 2  # turns between the slices


async def test_while_a_batch_runs_at_most_one_more_batch_is_buffered(harness: Harness) -> None:
    harness.consumer.arrive(2)
    await harness.step(batch_size_max=2)
    await _until(lambda: harness.batches == [[0, 1]])
    harness.consumer.arrive(5)
    await harness.step(batch_size_max=2)  # fetches 2: the next batch's worth
    assert len(harness.settler.merge) == 2
    fetches = harness.consumer.fetches

    async def commit_soon() -> None:
        await asyncio.sleep(0.05)
        harness.gate.set()

    committing = asyncio.create_task(commit_soon())
    await harness.step(batch_size_max=2)  # waits for the batch in flight instead of fetching more
    await committing
    assert harness.consumer.fetches == fetches
    await _until(lambda: len(harness.batches) == 2)
    assert harness.batches == [[0, 1], [2, 3]]


@dataclass
class TwoPartitions(NeverPaused):
    """Partitions 0 and 1 of the requests topic. Like aiokafka, `getmany` hands over one partition's
    records before the other's: partition 0's first, whatever the merge is waiting for."""

    topic: str
    logs: dict[int, list[ConsumerRecord]] = field(default_factory=lambda: {0: [], 1: []})
    fetched: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})
    fetches: int = 0

    def arrive(self, partition: int, seconds: list[int]) -> None:
        log = self.logs[partition]
        for second in seconds:
            value = payment_value(occurred_at=START + timedelta(seconds=second))
            log.append(ConsumerRecord(self.topic, partition, len(log), 0, 0, b"k", value, None, 1, len(value), ()))

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.fetches += 1
        for partition in (0, 1):
            tp = TopicPartition(self.topic, partition)
            new = self.logs[partition][self.fetched[partition] : self.fetched[partition] + max_records]
            if new and (not partitions or tp in partitions):
                self.fetched[partition] += len(new)
                return {tp: new}
        return {}

    async def position(self, tp: TopicPartition) -> int:
        return self.fetched[tp.partition]

    def last_stable_offset(self, tp: TopicPartition) -> int:
        return len(self.logs[tp.partition])

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp.partition])

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self.topic, 0), TopicPartition(self.topic, 1)}


async def test_a_partition_the_merge_waits_for_is_fetched_even_with_a_batch_buffered(harness: Harness) -> None:
    """The one-batch bound counts what the merge can release, not what it holds: with a batch in
    flight, the merge full of one partition and another partition unread and empty, the next batch
    cannot be taken until that partition is fetched. Waiting for the batch in flight first put a
    gap of up to half a second between batches (bench/RESULTS.md, "Gaps between batches")."""
    consumer = TwoPartitions(harness.settler.topic)
    harness.settler.clients.consumer = consumer  # type: ignore[attr-defined]
    harness.settler.positions.assign(1, 0)
    consumer.arrive(0, [10, 11, 12, 13])
    consumer.arrive(1, [0, 1])
    for _ in range(3):  # partition 0 twice (the merge waits for partition 1), then partition 1
        await harness.step(batch_size_max=2)
    await _until(lambda: harness.batches == [[0, 1]])  # partition 1's two: the earliest times
    assert (harness.settler.merge.buffered(0), harness.settler.merge.buffered(1)) == (4, 0)
    consumer.arrive(1, [2, 3])  # partition 1 has more, none buffered: the merge waits for it
    await harness.step(batch_size_max=2)  # the batch is still in flight
    assert harness.settler.merge.buffered(1) == 2
    harness.gate.set()
    await harness.step(batch_size_max=2)
    await _until(lambda: len(harness.batches) == 2)
    assert harness.batches == [[0, 1], [2, 3]]  # partition 1's next two: earlier than all of partition 0


async def _parse_with(harness: Harness, during: object) -> None:
    """One step that parses partition 0's six records two at a time, calling `during` at the first
    turn it gives the loop (while parsing)."""
    consumer = TwoPartitions(harness.settler.topic)
    harness.settler.clients.consumer = consumer  # type: ignore[attr-defined]
    harness.settler.positions.assign(1, 0)
    consumer.arrive(0, [10, 11, 12, 13, 14, 15])
    consumer.arrive(1, [20])  # unread and not buffered: the merge holds partition 0's records back
    stepping = asyncio.ensure_future(harness.step(batch_size_max=100))
    await _until(lambda: 0 < harness.settler.merge.buffered(0) < 6)
    during()  # type: ignore[operator]
    await stepping


async def test_a_seek_of_another_partition_while_parsing_keeps_every_record_fetched(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing gives the loop turns; if another partition is sought back meanwhile (a fenced batch,
    a resync), the records of this one are still buffered, every one: its fetch position is past them."""
    monkeypatch.setattr(intake_module, "PARSED_PER_TURN", 2)
    await _parse_with(harness, lambda: harness.settler.positions.assign(1, 0))
    assert harness.settler.merge.buffered(0) == 6


async def test_records_of_a_partition_sought_back_while_parsing_are_dropped(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the partition itself is sought back (or revoked) while its records are parsed, the rest of
    them are stale: the seek reads them again (or the new owner does), so none is buffered twice."""
    monkeypatch.setattr(intake_module, "PARSED_PER_TURN", 2)

    def seek_back() -> None:
        harness.settler._forget(0)
        harness.settler.positions.assign(0, 0)

    await _parse_with(harness, seek_back)
    assert harness.settler.merge.buffered(0) == 0
