"""The outbox's outcome blob: zstd-compressed, and rows stored plain before migration 0040 still read."""

from __future__ import annotations

import json

from consumers.ledger.blobs import pack_payloads, unpack_payloads

OUTCOMES = [
    json.dumps({"event_id": f"{i:032x}", "amount": i * 100, "result": "created"}).encode() for i in range(2_000)
]


def test_payloads_round_trip_in_order_through_a_smaller_zstd_frame() -> None:
    blob, size = pack_payloads(OUTCOMES)
    assert blob[:4] == bytes.fromhex("28b52ffd")  # a zstd frame
    assert size == len(b"\n".join(OUTCOMES))
    assert len(blob) * 4 < size
    assert unpack_payloads(blob, size) == OUTCOMES


def test_a_row_stored_plain_reads_as_it_was() -> None:
    assert unpack_payloads(b"\n".join(OUTCOMES[:3]), None) == OUTCOMES[:3]


def test_no_outcomes_is_an_empty_plain_blob() -> None:
    assert pack_payloads([]) == (b"", None)
    assert unpack_payloads(b"", None) == []
