"""The ledger's message reading: dead-letter classification and the deterministic partition merge."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.ledger.deadletter import Unreadable, read_event
from consumers.ledger.merge import Item, PartitionMerge
from consumers.ledger.reading import REQUEST_ADAPTER
from schemas.payments import PaymentRequested
from schemas.topics import PAYMENT_REQUESTS
from tests.unit.ledger_support import START, payment_value

ALLOWED = PAYMENT_REQUESTS.event_type_names


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe not json", "not_json"),
        (None, "not_json"),
        (b"[1, 2]", "schema_invalid"),
        (payment_value(amount=1.5), "schema_invalid"),
        (payment_value(event_type="payment.teleported"), "unknown_event_type"),
        (payment_value(event_type="account.opened"), "unexpected_event_type"),
    ],
)
def test_poison_is_classified(raw: bytes | None, reason: str) -> None:
    """Every kind of unreadable message gets the dead-letter reason the contract names."""
    result = read_event(raw, REQUEST_ADAPTER, ALLOWED)
    assert isinstance(result, Unreadable) and result.reason == reason


def test_valid_request_is_read() -> None:
    """A well-formed request is parsed in one pass into its model."""
    assert isinstance(read_event(payment_value(), REQUEST_ADAPTER, ALLOWED), PaymentRequested)


@given(seed=st.integers(0, 2**32), cuts=st.lists(st.integers(1, 7), min_size=1, max_size=30))
def test_merge_order_does_not_depend_on_fetch_sizes(seed: int, cuts: list[int]) -> None:
    """However fetches split the partitions, the merged order is the same event-time order."""
    rng = random.Random(seed)
    streams = {
        p: [Item(START + timedelta(seconds=rng.randint(0, 50)), p, o, (p, o)) for o in range(rng.randint(0, 12))]
        for p in range(3)
    }
    for stream in streams.values():
        stream.sort(key=lambda i: i.at)  # each partition is in event-time order, as a producer writes it
        for offset, item in enumerate(stream):
            stream[offset] = Item(item.at, item.partition, offset, (item.partition, offset))
    expected = sorted((i for s in streams.values() for i in s), key=lambda i: (i.at, i.partition))

    merge: PartitionMerge[tuple[int, int]] = PartitionMerge(buffered_per_partition_max=100)
    fetched = dict.fromkeys(streams, 0)
    taken: list[Item] = []
    for step in range(1_000):
        partition = step % 3
        cut = cuts[step % len(cuts)]
        for item in streams[partition][fetched[partition] : fetched[partition] + cut]:
            merge.add(item)
        fetched[partition] = min(len(streams[partition]), fetched[partition] + cut)
        unread = {p for p in streams if fetched[p] < len(streams[p])}
        taken += merge.take(cuts[0], unread=unread)
        if not unread and not len(merge):
            break
    assert [i.payload for i in taken] == [i.payload for i in expected]


def _take_by_scanning(buffers: dict[int, list[Item]], limit: int, unread: set[int]) -> list[Item]:
    """The release rule written plainly (the merge's first implementation): scan every partition's
    head for the least (at, partition); stop when a partition with unread data has nothing left."""
    taken: list[Item] = []
    while len(taken) < limit:
        if any(not buffers.get(p) for p in unread):
            break
        heads = [(b[0].at, p) for p, b in buffers.items() if b]
        if not heads:
            break
        taken.append(buffers[min(heads)[1]].pop(0))
    return taken


@given(
    seed=st.integers(0, 2**32),
    partitions=st.integers(1, 8),
    limit=st.integers(0, 60),
    unread=st.sets(st.integers(0, 9)),
)
def test_a_take_releases_what_scanning_every_head_releases(
    seed: int, partitions: int, limit: int, unread: set[int]
) -> None:
    """One `take` (a heap of heads) releases the same messages, in the same order, as scanning every
    partition's head for each message; times tie often across partitions, some buffers are empty."""
    rng = random.Random(seed)
    buffers: dict[int, list[Item]] = {}
    merge: PartitionMerge[tuple[int, int]] = PartitionMerge(buffered_per_partition_max=100)
    for p in range(partitions):
        times = sorted(START + timedelta(seconds=rng.randint(0, 5)) for _ in range(rng.randint(0, 10)))
        buffers[p] = [Item(at, p, offset, (p, offset)) for offset, at in enumerate(times)]
        for item in buffers[p]:
            merge.add(item)
    expected = _take_by_scanning(buffers, limit, unread)
    assert [i.payload for i in merge.take(limit, unread=unread)] == [i.payload for i in expected]
    assert len(merge) == sum(len(b) for b in buffers.values())  # nothing else left its buffer


def test_the_merge_names_the_partitions_it_waits_for() -> None:
    """A partition with unread data and nothing buffered holds every later message back; one that
    is caught up (not unread) holds nothing back."""
    merge: PartitionMerge[str] = PartitionMerge(buffered_per_partition_max=10)
    merge.add(Item(START, 0, 0, "a"))
    merge.add(Item(START + timedelta(seconds=2), 0, 1, "b"))
    assert merge.waiting_for({0, 1}) == [1]
    assert merge.take(10, unread={0, 1}) == []
    merge.add(Item(START + timedelta(seconds=1), 1, 0, "c"))
    assert merge.waiting_for({0, 1}) == []
    assert [item.payload for item in merge.take(10, unread={0, 1})] == ["a", "c"]  # then 1 is empty again
    assert merge.waiting_for({0}) == []  # partition 1 caught up: "b" may go
    assert [item.payload for item in merge.take(10, unread={0})] == ["b"]
