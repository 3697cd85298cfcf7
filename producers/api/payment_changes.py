"""Wakes `GET /v1/payments/{id}?wait=N` when the payment's status changes, not at its next poll.

Every change of a payment's status notifies channel `kpsandbox_payment_changed` with the payment's id
when it commits (migration 0039; the views consumer writes the ledger's answers). The API listens on
one connection of its own (opened with its resources); a waiting request registers an event for its
payment *before* it reads the row, so a change committed between its read and its wait still wakes it.

Notifications only shorten the wait; the row stays the truth. A waiter still re-reads every
WATCHED_POLL_S, so a notification lost with the listening connection makes it slower, never wrong; once
that connection is gone, new waiters poll every WAIT_POLL_S as without it (producers/api/polling.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Final

import asyncpg

from infra.db import CONNECT_TIMEOUT_S

CHANNEL: Final = "kpsandbox_payment_changed"
WAITERS_MAX: Final = 10_000  # requests watching at once; past this, a request polls as without notifications
CLOSE_TIMEOUT_S: Final = 5.0

log = logging.getLogger("kpsandbox.api.payment_changes")


class PaymentChanges:
    """The listening connection and the requests watching payments. Only the event loop touches it."""

    def __init__(self) -> None:
        self._connection: asyncpg.Connection | None = None
        self._watching: dict[str, set[asyncio.Event]] = {}
        self._watchers = 0

    @classmethod
    async def open(cls, dsn: str) -> PaymentChanges:
        """Connects and listens; raises what asyncpg.connect raises when PostgreSQL does not answer."""
        changes = cls()
        connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            await connection.add_listener(CHANNEL, changes._notified)
        except BaseException:
            await connection.close()
            raise
        connection.add_termination_listener(changes._lost)
        changes._connection = connection
        return changes

    @property
    def listening(self) -> bool:
        """True while notifications can arrive."""
        return self._connection is not None and not self._connection.is_closed()

    @contextlib.contextmanager
    def watch(self, payment_id: str) -> Iterator[asyncio.Event | None]:
        """An event set whenever `payment_id`'s status changes, while the block runs; None when nothing
        would set it (not listening, or WAITERS_MAX requests already watching)."""
        if not self.listening or self._watchers >= WAITERS_MAX:
            yield None
            return
        event = asyncio.Event()
        self._watching.setdefault(payment_id, set()).add(event)
        self._watchers += 1
        try:
            yield event
        finally:
            self._watchers -= 1
            watchers = self._watching[payment_id]
            watchers.discard(event)
            if not watchers:
                del self._watching[payment_id]

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)

    def _notified(self, _connection: Any, _pid: int, _channel: str, payment_id: str) -> None:
        for event in self._watching.get(payment_id, ()):
            event.set()

    def _lost(self, _connection: Any) -> None:
        if self._connection is not None:
            log.warning("the payment-change listener's connection to PostgreSQL closed; ?wait polls instead")
        self._connection = None
        for watchers in self._watching.values():  # wake every waiter: it re-reads, then polls
            for event in watchers:
                event.set()
