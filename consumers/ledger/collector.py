"""The settler's garbage-collector policy: CPython's cyclic collector re-scanned every buffered
request again and again with its default thresholds; while settling it runs rarely instead.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

# The cyclic garbage collector's thresholds while settling (CPython's default: 700, 10, 10). With
# the defaults, full collections re-scanned every buffered request about once per batch: a third
# of the process's CPU (bench/RESULTS.md, "Ledger CPU (issue 13)"). Settling creates few cycles;
# reference counting frees almost everything, so collecting rarely costs little memory. The young
# generations stay small, though: at (50,000, 20, 100) a middle-generation collection scanned up to a
# million objects at once and the paced p99 grew from ~170 to ~475 ms (bench/RESULTS.md).
GC_THRESHOLDS: Final = (10_000, 10, 100)


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """While settling: everything alive after start-up (modules, schemas, clients) is out of the
    collector's sight and its thresholds are GC_THRESHOLDS; both restored afterwards (tests run
    settlers inside their own process)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
