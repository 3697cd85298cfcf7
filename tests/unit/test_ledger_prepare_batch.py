"""A batch as the merge hands it over: what it keeps, where each partition starts, the accounts it names."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from consumers.ledger.batch import Batch, PartitionProgress, prepare_batch
from consumers.ledger.deadletter import Letter
from consumers.ledger.merge import Item
from consumers.ledger.positions import Positions
from consumers.ledger.reading import Poison, read_requests
from consumers.ledger.records import Request
from tests.unit.ledger_support import START, payment_value


def _items(partition: int, first_offset: int, values: list[bytes]) -> list[Item[Request | Poison]]:
    records = [
        ConsumerRecord("t", partition, first_offset + n, 0, 0, b"k", v, None, 1, len(v), ())
        for n, v in enumerate(values)
    ]
    return read_requests(partition, records, START)[0]


def _letter(item: Item[Request | Poison], reason: str, detail: str) -> Letter:
    return Letter(item.key, (), f"{reason}: {detail}".encode(), reason)


def test_each_partition_starts_where_the_database_says_and_settled_or_revoked_items_are_dropped() -> None:
    positions = Positions()
    positions.assign(0, 5)  # offsets 3 and 4 of partition 0 are settled already
    positions.assign(1, 0)
    items = [
        *_items(0, 3, [payment_value() for _ in range(4)]),  # offsets 3..6
        *_items(1, 0, [payment_value(), b"not json"]),  # a request, then poison
        *_items(2, 0, [payment_value()]),  # partition 2 is not ours (revoked meanwhile)
    ]
    batch = prepare_batch(items, {}, positions=positions, letter=_letter)
    assert batch.progress == {
        0: PartitionProgress(0, start_offset=5, next_offset=7, messages=2, dead_lettered=0),
        1: PartitionProgress(1, start_offset=0, next_offset=2, messages=2, dead_lettered=1),
    }
    assert [(r.partition, r.offset) for r in batch.requests] == [(0, 5), (0, 6), (1, 0)]
    assert [letter.reason for letter in batch.letters] == ["not_json"]


def test_a_partition_with_only_markers_past_its_messages_moves_to_its_fetch_position() -> None:
    positions = Positions()
    positions.assign(0, 10)
    positions.assign(1, 4)
    batch = prepare_batch([], {0: 12, 1: 4}, positions=positions, letter=_letter)  # 1 has nothing new
    assert batch.progress == {0: PartitionProgress(0, 10, 12, 0, 0)}


def test_a_batch_names_every_account_its_requests_name() -> None:
    values = [
        payment_value(payer_account_id="acc_0000000a", payee_account_id="acc_0000000b"),
        payment_value(payer_account_id="acc_0000000b", payee_account_id="acc_0000000c"),
    ]
    requests = [item.payload for item in _items(0, 0, values) if isinstance(item.payload, Request)]
    assert Batch(requests, {}).accounts == {"acc_0000000a", "acc_0000000b", "acc_0000000c"}
    assert Batch([], {}).accounts == frozenset()
