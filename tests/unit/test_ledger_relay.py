"""The outbox relay is supervised: a publish that keeps failing stops consumption, then fails loudly."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from consumers.ledger import outbox
from consumers.ledger.outbox import PUBLISH_QUEUE_BATCHES_MAX, Committed, OutcomeRelay
from infra.errors import SandboxError


class _Relay(OutcomeRelay):
    """A relay whose publishing fails `failures` times before it works (no Kafka, no PostgreSQL)."""

    def __init__(self, failures: int) -> None:
        super().__init__(producer=None, pool=None, topic="t", dead_letter_topic="d", on_retry=self._count)  # type: ignore[arg-type]
        self.failures = failures
        self.published: list[int] = []
        self.retries = 0

    def _count(self) -> None:
        self.retries += 1

    async def publish(self, committed: Committed) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker away")
        self.published.append(committed.outbox_id)


def _row(n: int) -> Committed:
    return Committed(n, [f"acc_{n:08x}"], [b"{}"], [])


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "RELAY_BACKOFF_S", 0.001)
    monkeypatch.setattr(outbox, "RELAY_BACKOFF_MAX_S", 0.001)


async def test_a_transient_failure_is_retried_and_then_runs_in_order() -> None:
    """Two failed attempts, then every row is published in commit order and `then` runs after each."""
    relay = _Relay(failures=2)
    relay.start()
    done: list[int] = []
    for n in range(3):

        async def then(n: int = n) -> None:
            done.append(n)

        await relay.submit(_row(n), then=then)
    await asyncio.wait_for(relay.drain(), 5)
    await relay.stop()
    assert relay.published == [0, 1, 2] and done == [0, 1, 2] and relay.retries == 2


async def test_a_relay_that_cannot_recover_stops_consumption_and_fails_the_settler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While publishing fails, at most the queue's bound is accepted; then submit raises the relay's SandboxError."""
    monkeypatch.setattr(outbox, "RELAY_ATTEMPTS_MAX", 5)
    relay = _Relay(failures=10**6)
    relay.start()

    async def nothing() -> None:
        return None

    accepted = 0
    with pytest.raises(SandboxError, match="could not be published"):
        for n in range(PUBLISH_QUEUE_BATCHES_MAX + 10):
            await asyncio.wait_for(relay.submit(_row(n), then=nothing), 5)
            accepted += 1
    # One row in the worker's hands plus a full queue: the outbox cannot grow past that.
    assert accepted <= PUBLISH_QUEUE_BATCHES_MAX + 1
    with pytest.raises(SandboxError):
        relay.check()
    await relay.stop()
