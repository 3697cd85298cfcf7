"""The settler's garbage-collector policy: CPython's cyclic collector re-scanned every buffered
request again and again with its default thresholds; while settling it runs rarely instead
(infra/collector.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from infra import collector

# The cyclic garbage collector's thresholds while settling (CPython's default: 700, 10, 10). With
# the defaults, full collections re-scanned every buffered request about once per batch: a third
# of the process's CPU (bench/RESULTS.md, "Ledger CPU (issue 13)"). Settling creates few cycles;
# reference counting frees almost everything, so collecting rarely costs little memory. The young
# generations stay small, though: at (50,000, 20, 100) a middle-generation collection scanned up to a
# million objects at once and the paced p99 grew from ~170 to ~475 ms (bench/RESULTS.md).
GC_THRESHOLDS: Final = (10_000, 10, 100)


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """While settling: the collector runs at GC_THRESHOLDS, with what lived before frozen."""
    with collector.collecting_rarely(GC_THRESHOLDS):
        yield
