"""`?wait=N`'s loop (producers/api/polling.py) and the payment watchers that wake it
(producers/api/payment_changes.py), without a database: the notification's path end to end is
tests/integration/test_api_payments.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from producers.api import payment_changes
from producers.api.payment_changes import PaymentChanges
from producers.api.polling import WAIT_POLL_S, WATCHED_POLL_S, poll_until


class _Reads:
    """A row read again and again: its statuses in turn, and when each read happened."""

    def __init__(self, *statuses: str) -> None:
        self._statuses = list(statuses)
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(time.monotonic())
        return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]


class _Listening:
    """Stands in for the listening connection: open until `closed` is set."""

    closed = False

    def is_closed(self) -> bool:
        return self.closed


def _listening() -> tuple[PaymentChanges, _Listening]:
    changes, connection = PaymentChanges(), _Listening()
    changes._connection = connection  # type: ignore[assignment]
    return changes, connection


async def test_a_set_event_wakes_the_wait_at_once_not_at_its_next_read() -> None:
    reads, changed = _Reads("processing", "succeeded"), asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, changed.set)
    status = await poll_until(reads, done=lambda s: s == "succeeded", wait_s=5, changed=changed)
    assert status == "succeeded"
    assert reads.times[1] - reads.times[0] < WATCHED_POLL_S / 2, reads.times


async def test_without_a_change_a_watched_wait_reads_again_every_watched_poll() -> None:
    reads = _Reads("processing", "processing", "succeeded")
    status = await poll_until(reads, done=lambda s: s == "succeeded", wait_s=5, changed=asyncio.Event())
    assert status == "succeeded"
    gaps = [later - earlier for earlier, later in zip(reads.times, reads.times[1:], strict=False)]
    assert all(WATCHED_POLL_S * 0.9 <= gap < WATCHED_POLL_S * 2 for gap in gaps), gaps


async def test_an_event_set_before_the_first_read_does_not_wake_a_second_read_at_once() -> None:
    """What was set before the wait began, the first read already sees: the event is cleared first."""
    reads, changed = _Reads("processing"), asyncio.Event()
    changed.set()
    started = time.monotonic()
    await poll_until(reads, done=lambda s: s == "succeeded", wait_s=0.3, changed=changed)
    assert len(reads.times) == 2 and time.monotonic() - started >= 0.29, reads.times


async def test_an_unwatched_wait_polls_every_wait_poll() -> None:
    reads = _Reads("processing", "processing", "succeeded")
    await poll_until(reads, done=lambda s: s == "succeeded", wait_s=5)
    gaps = [later - earlier for earlier, later in zip(reads.times, reads.times[1:], strict=False)]
    assert all(WAIT_POLL_S * 0.9 <= gap < WATCHED_POLL_S for gap in gaps), gaps


async def test_a_notification_sets_the_events_watching_its_payment_only() -> None:
    changes, _ = _listening()
    with changes.watch("pay_a") as a, changes.watch("pay_a") as a2, changes.watch("pay_b") as b:
        assert a is not None and a2 is not None and b is not None
        changes._notified(None, 0, payment_changes.CHANNEL, "pay_a")
        assert a.is_set() and a2.is_set() and not b.is_set()
    assert changes._watching == {} and changes._watchers == 0


async def test_nothing_is_watched_while_not_listening_or_past_the_bound(monkeypatch: Any) -> None:
    assert PaymentChanges().listening is False
    with PaymentChanges().watch("pay_a") as unwatched:
        assert unwatched is None
    changes, _ = _listening()
    monkeypatch.setattr(payment_changes, "WAITERS_MAX", 1)
    with changes.watch("pay_a") as first, changes.watch("pay_b") as second:
        assert first is not None and second is None


async def test_a_lost_connection_wakes_every_watcher_and_later_waits_poll() -> None:
    changes, connection = _listening()
    with changes.watch("pay_a") as watching:
        assert watching is not None
        connection.closed = True
        changes._lost(connection)
        assert watching.is_set()
    with changes.watch("pay_a") as later:
        assert later is None
