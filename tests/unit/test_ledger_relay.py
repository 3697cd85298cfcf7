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


class _Batch:
    """A producer batch that holds any number of records."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.closed = False

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object:
        self.records.append(value)
        return object()

    def close(self) -> None:
        self.closed = True


class _Producer:
    """Enough of AIOKafkaProducer for send_all: batches are acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[bytes]]] = []
        self.batches: list[_Batch] = []

    async def partitions_for(self, _topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> _Batch:
        self.batches.append(_Batch())
        return self.batches[-1]

    async def send_batch(self, batch: _Batch, _topic: str, *, partition: int) -> asyncio.Future[None]:
        assert batch.closed, "a batch handed over open waits out the producer's linger"
        self.sent.append((partition, batch.records))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_large_publish_gives_the_event_loop_turns_and_keeps_every_payers_order() -> None:
    """Adding thousands of outcomes to producer batches is CPU work: between slices of
    APPENDS_PER_TURN the batch being settled gets its turn (its PostgreSQL statements wait on the
    loop), instead of waiting for the whole publish. Nothing is lost or reordered."""
    producer = _Producer()
    count = outbox.APPENDS_PER_TURN * 3 + 1
    keys = [f"acc_{n % 7:08x}" for n in range(count)]
    payloads = [str(n).encode() for n in range(count)]
    seen: list[int] = []  # outcomes added to batches, each time the other task got a turn
    publishing = asyncio.ensure_future(outbox.send_all(producer, topic="t", keys=keys, payloads=payloads))  # type: ignore[arg-type]
    while not publishing.done():
        seen.append(sum(len(batch.records) for batch in producer.batches))
        await asyncio.sleep(0)
    await publishing
    assert len([n for n in seen if 0 < n < count]) >= 2  # turns in the middle of the publish
    sent = {partition: [int(v) for v in records] for partition, records in producer.sent}
    assert sorted(n for values in sent.values() for n in values) == list(range(count))
    for values in sent.values():
        assert values == sorted(values)  # each partition's outcomes in the order decided


async def test_a_committed_batch_is_published_once_the_settler_has_begun_its_next() -> None:
    """Between two transactions the settler's work comes first: a batch submitted at its commit
    is published only after `go` (the next batch has begun), not in the gap before it."""
    relay = _Relay(failures=0)
    relay.start()

    async def nothing() -> None:
        return None

    await relay.submit(_row(1), then=nothing)
    for _ in range(20):  # many turns of the loop, far less than SETTLER_FIRST_WAIT_S
        await asyncio.sleep(0)
    assert relay.published == []
    relay.go()
    await asyncio.wait_for(relay.drain(), 5)
    await relay.stop()
    assert relay.published == [1]


async def test_a_settler_that_never_says_go_delays_publishing_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`go` orders the work; it never gates it: without it a batch is published after SETTLER_FIRST_WAIT_S."""
    monkeypatch.setattr(outbox, "SETTLER_FIRST_WAIT_S", 0.02)
    relay = _Relay(failures=0)
    relay.start()
    published = asyncio.Event()

    async def then() -> None:
        published.set()

    await relay.submit(_row(1), then=then)
    await asyncio.wait_for(published.wait(), 2)
    await relay.stop()
    assert relay.published == [1]


async def test_a_publish_under_way_pauses_while_the_settler_is_between_batches() -> None:
    """The slices of a large publish wait too: once another batch is committed (a submit), the next
    slice waits for `go`, so the settler's next batch begins without the relay's work before it."""
    producer = _Producer()
    relay = OutcomeRelay(producer=producer, pool=None, topic="t", dead_letter_topic="d")  # type: ignore[arg-type]
    count = outbox.APPENDS_PER_TURN * 3
    keys = [f"acc_{n % 7:08x}" for n in range(count)]
    publishing = asyncio.ensure_future(
        outbox.send_all(producer, topic="t", keys=keys, payloads=[b"{}"] * count, turn=relay._after_settler)  # type: ignore[arg-type]
    )
    while not producer.batches or sum(len(b.records) for b in producer.batches) < outbox.APPENDS_PER_TURN:
        await asyncio.sleep(0)
    relay._settler_first.clear()  # what a submit at the next commit does
    for _ in range(20):  # the slice already under way may finish
        await asyncio.sleep(0)
    added = sum(len(b.records) for b in producer.batches)
    for _ in range(20):
        await asyncio.sleep(0)
    assert sum(len(b.records) for b in producer.batches) == added < count  # paused mid-publish
    relay.go()
    await asyncio.wait_for(publishing, 5)
    assert sum(len(b.records) for b in producer.batches) == count


class _Outcomes:
    """An outcome sender (publisher.py's shape) that fails to get its first `failures` sends acknowledged."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sends: list[tuple[str, list[str]]] = []
        self.closed = False

    async def send_all(self, *, topic: str, keys: list[str], payloads: list[bytes], turn):  # type: ignore[no-untyped-def]
        self.sends.append((topic, keys))
        if self.failures:
            self.failures -= 1
            raise outbox.NotPublished("1 of 1 outcomes not acknowledged")

    async def close(self) -> None:
        self.closed = True


async def test_outcomes_not_acknowledged_are_published_again_and_the_row_deleted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch librdkafka could not get acknowledged is sent whole again (at least once), to the
    outcomes topic; only then is its outbox row deleted, and `stop` closes the sender."""
    deleted: list[int] = []

    class _Connection:
        async def execute(self, _query: str, outbox_id: int) -> None:
            deleted.append(outbox_id)

    class _Pool:
        def acquire(self):  # type: ignore[no-untyped-def]
            connection = _Connection()

            class _Acquired:
                async def __aenter__(self) -> _Connection:
                    return connection

                async def __aexit__(self, *_: object) -> None:
                    return None

            return _Acquired()

    sender = _Outcomes(failures=2)
    relay = OutcomeRelay(producer=_Producer(), pool=_Pool(), topic="t", dead_letter_topic="d", outcomes=sender)  # type: ignore[arg-type]
    relay.start()
    await relay.submit(_row(7), then=lambda: asyncio.sleep(0))
    await asyncio.wait_for(relay.drain(), 5)
    await relay.stop()
    assert sender.sends == [("t", ["acc_00000007"])] * 3
    assert deleted == [7] and sender.closed
