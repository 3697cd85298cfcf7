"""The outbox's outcome blob: zstd-compressed, and rows stored plain before migration 0040 still read."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_a_row_compressed_by_pyarrow_before_still_reads() -> None:
    """Rows written while the codec was pyarrow's (2026-12-02) are standard zstd frames too."""
    import pyarrow as pa

    joined = b"\n".join(OUTCOMES)
    blob = pa.Codec("zstd", compression_level=1).compress(joined, asbytes=True)
    assert unpack_payloads(blob, len(joined)) == OUTCOMES


def test_the_codec_does_not_load_pyarrow_into_the_ledger() -> None:
    """pyarrow's codec brought about 38 MiB of libraries into the ledger process, which took its RSS
    past issue 3's 300 MB bound (bench/RESULTS.md, "Ledger CPU")."""
    probe = (
        "import sys\n"
        "from consumers.ledger.blobs import pack_payloads, unpack_payloads\n"
        "blob, size = pack_payloads([b'{}'] * 100)\n"
        "assert unpack_payloads(blob, size) == [b'{}'] * 100\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
