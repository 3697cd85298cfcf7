"""A batch's outcomes as its outbox row stores them: one blob of newline-separated JSON values
(they never contain a raw newline), compressed with zstd.

Compressed, a batch of 4,000 outcomes is about 300 kB instead of 2.4 MB: PostgreSQL writes an
eighth of the out-of-line chunks and WAL, and inserting and deleting the row takes 2.0 instead of
5.1 µs per payment, for 0.8 µs of compression (bench/RESULTS.md, "Ledger CPU"). The row keeps
the uncompressed size (`payloads_bytes`, migration 0040), which zstd's decoder needs; a row
written before that migration has none and is read as it was stored. Pure: no I/O.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pyarrow as pa

LEVEL: Final = 1  # zstd's fastest: a row lives for milliseconds


@functools.cache
def _codec() -> pa.Codec:
    """Built on first use: the CLI imports the ledger's modules, and pyarrow only where it is used
    (tests/unit/test_cli_startup.py)."""
    import pyarrow as pa

    return pa.Codec("zstd", compression_level=LEVEL)


def pack_payloads(payloads: list[bytes]) -> tuple[bytes, int | None]:
    """(the blob, its uncompressed size); an empty batch is an empty, uncompressed blob."""
    joined = b"\n".join(payloads)
    if not joined:
        return joined, None
    return _codec().compress(joined, asbytes=True), len(joined)


def unpack_payloads(blob: bytes, size: int | None) -> list[bytes]:
    """The outcomes of a blob `pack_payloads` made (`size` given), or of one stored plain (None)."""
    if not blob:
        return []
    joined = blob if size is None else _codec().decompress(blob, decompressed_size=size, asbytes=True)
    return joined.split(b"\n")
