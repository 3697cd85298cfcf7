"""The settler's garbage-collector policy: CPython's cyclic collector re-scanned every buffered
request again and again with its default thresholds; while settling it runs rarely instead
(infra/collector.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from infra import collector

# The cyclic garbage collector's thresholds while settling (CPython's default: 700, 10, 10).
# Settling makes no reference cycles (tests/unit/test_ledger_cpu.py): reference counting frees what
# it makes. In a 100,000-payment drain the collector's 133 collections at (10,000, 10, 100) found 14
# objects in all, while walking the live ones cost 5 µs per payment, 7% of the process's CPU
# (bench/RESULTS.md, "The collector runs when the heap grows"). A young collection now waits until a
# million more containers are alive than at the last one (CPython counts allocations less
# deallocations), so it runs only when the heap really grows, as when a drain fills the intake's
# buffers (7 collections in that drain, start-up included); older generations follow every 10. Were
# cycles ever made, at most about a million objects (~150 MB) would wait for a collection.
# History: with the defaults, full collections re-scanned every buffered request about once per batch
# (a third of the CPU); at (50,000, 20, 100) a middle-generation collection scanned up to a million
# objects at once and the paced p99 grew from ~170 to ~475 ms.
GC_THRESHOLDS: Final = (1_000_000, 10, 10)


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """While settling: the collector runs at GC_THRESHOLDS, with what lived before frozen."""
    with collector.collecting_rarely(GC_THRESHOLDS):
        yield
