"""A garbage-collector policy for long batch loops (the ledger's settler, the archive).

CPython's cyclic collector runs a young collection every 700 new container objects (tuples, lists,
records) and, every so often, walks everything alive in the process. A loop that makes millions of
short-lived containers, freed by reference counting anyway, pays that walk again and again
(bench/RESULTS.md: a third of the settler's CPU; the archive's too, when the process holds much).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collecting_rarely(thresholds: tuple[int, int, int]) -> Iterator[None]:
    """While the block runs: everything alive before it (modules, schemas, clients) is out of the
    collector's sight and its thresholds are `thresholds`; both restored afterwards (tests run
    settlers and archives inside their own process). One such block at a time per process: the
    collector's state is process-wide."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
