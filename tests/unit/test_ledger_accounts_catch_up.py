"""When the ledger reads the accounts topic before a batch: always when the batch names an account
not known to be stored; otherwise at least every CATCH_UP_INTERVAL_S (a fake consumer counts the
catch-ups; the real reader runs against Kafka in tests/integration/test_ledger_settle.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from consumers.ledger import accounts
from consumers.ledger.accounts import CATCH_UP_INTERVAL_S, AccountsReader
from infra import kafka_lookups as lookups
from infra.settings import Settings
from tests.unit.test_kafka_lookups import SilentConsumer

REAL_MONOTONIC = time.monotonic


class FakeConsumer:
    """A caught-up accounts topic: every catch-up asks for the end offsets once."""

    def __init__(self) -> None:
        self.catch_ups = 0

    async def end_offsets(self, _tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.catch_ups += 1
        return {}


@pytest.fixture
async def reader(monkeypatch: pytest.MonkeyPatch) -> AccountsReader:
    nothing = SimpleNamespace()
    built = AccountsReader(
        settings=Settings(topic_prefix="known."),
        topic="known.kp.accounts.v1",
        group="g",
        pool=nothing,  # type: ignore[arg-type]
        producer=nothing,  # type: ignore[arg-type]
        relay=nothing,  # type: ignore[arg-type]
    )
    built.consumer = FakeConsumer()  # type: ignore[assignment]
    clock = SimpleNamespace(now=1_000.0)
    monkeypatch.setattr(accounts.time, "monotonic", lambda: clock.now)
    built.clock = clock  # type: ignore[attr-defined]
    return built


def _catch_ups(reader: AccountsReader) -> int:
    return reader.consumer.catch_ups  # type: ignore[attr-defined,no-any-return]


async def test_a_batch_naming_an_unknown_account_always_catches_up(reader: AccountsReader) -> None:
    reader.stored(["acc_1"])
    await reader.catch_up_for(["acc_1"])  # nothing caught up yet
    await reader.catch_up_for(["acc_1", "acc_2"])
    await reader.catch_up_for(["acc_2"])
    assert _catch_ups(reader) == 3


async def test_a_batch_of_known_accounts_skips_a_recent_catch_up(reader: AccountsReader) -> None:
    await reader.catch_up()
    reader.stored(["acc_1", "acc_2"])
    reader.clock.now += CATCH_UP_INTERVAL_S / 2  # type: ignore[attr-defined]
    assert await reader.catch_up_for(["acc_2", "acc_1"]) == 0
    assert _catch_ups(reader) == 1
    reader.clock.now += CATCH_UP_INTERVAL_S  # type: ignore[attr-defined]
    await reader.catch_up_for(["acc_1"])  # stale: accounts nobody pays must be stored too
    assert _catch_ups(reader) == 2


async def test_the_known_set_is_bounded(reader: AccountsReader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "KNOWN_ACCOUNTS_MAX", 3)
    reader.stored(["a", "b", "c"])
    reader.stored(["d"])  # past the bound: the set starts again
    await reader.catch_up()
    await reader.catch_up_for(["a"])
    assert _catch_ups(reader) == 2


async def test_a_catch_up_whose_leader_is_silent_fails_as_a_kafka_error(
    reader: AccountsReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settler's loop pauses on a KafkaError and retries; aiokafka alone would wait 40 s."""
    monkeypatch.setattr(lookups, "OFFSETS_WAIT_S", 0.05)
    monkeypatch.setattr(accounts.time, "monotonic", REAL_MONOTONIC)  # the fixture's clock would stop asyncio's
    reader.consumer = SilentConsumer()  # type: ignore[assignment]
    with pytest.raises(KafkaTimeoutError, match="accounts topic's end offsets"):
        await reader.catch_up()
