"""A batch's outcomes as its outbox row stores them: one blob of newline-separated JSON values
(they never contain a raw newline), compressed with zstd.

Compressed, a batch of 4,000 outcomes is about 300 kB instead of 2.4 MB: PostgreSQL writes an
eighth of the out-of-line chunks and WAL, and inserting and deleting the row takes 2.0 instead of
5.1 µs per payment, for 0.8 µs of compression (bench/RESULTS.md, "Ledger CPU"). The row keeps
the uncompressed size (`payloads_bytes`, migration 0040), which zstd's decoder needs; a row
written before that migration has none and is read as it was stored. Pure: no I/O.

The codec is python-zstandard's (a small C extension that releases the GIL while it works), not
pyarrow's: pyarrow brought about 38 MiB of libraries into the ledger process and took its RSS past
issue 3's 300 MB bound. Both write standard zstd frames, so rows compressed by either read alike, and
both take about 0.3 ms for 4,000 outcomes (best of 20, measured side by side).
"""

from __future__ import annotations

from typing import Final

import zstandard

LEVEL: Final = 1  # zstd's fastest: a row lives for milliseconds


def pack_payloads(payloads: list[bytes]) -> tuple[bytes, int | None]:
    """(the blob, its uncompressed size); an empty batch is an empty, uncompressed blob."""
    joined = b"\n".join(payloads)
    if not joined:
        return joined, None
    # A compressor per call: one is not safe to share between threads, and making one costs microseconds.
    return zstandard.ZstdCompressor(level=LEVEL).compress(joined), len(joined)


def unpack_payloads(blob: bytes, size: int | None) -> list[bytes]:
    """The outcomes of a blob `pack_payloads` made (`size` given), or of one stored plain (None)."""
    if not blob:
        return []
    joined = blob if size is None else zstandard.ZstdDecompressor().decompress(blob, max_output_size=size)
    return joined.split(b"\n")
