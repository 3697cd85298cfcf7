"""Archive and replay on real Kafka and PostgreSQL: digest reproduced, counts exact, incremental, bad input."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import asyncpg
import duckdb
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from consumers.archive.archiver import Archiver
from consumers.archive.reader import RangeReader
from consumers.ledger.consumer import Settler
from consumers.ledger.digest import ledger_digest
from infra import kafka_clients
from infra.archive import load_manifest
from infra.db import create_database, migrate
from infra.errors import SandboxError
from infra.kafka_admin import end_offsets
from infra.settings import Settings, with_overrides
from producers.replay.filters import ReplayFilter
from producers.replay.replayer import ORIGINAL_OFFSET, ORIGINAL_TOPIC, replay
from producers.replay.sources import ArchiveSource, PrefixSource
from schemas.topics import ACCOUNTS, CASH, CATALOG, PAYMENT_REQUESTS
from tests.integration.test_ledger_support import make_accounts, make_requests, produce, read_all

REQUESTS = 300
METADATA_BACKOFFS_S = 0.3  # six topics learnt one 100 ms backoff at a time took 0.61 s
SUPPRESSED_S = 0.045  # librdkafka's sparse-connection suppression is 50 ms (its debug log says 49 ms left)


async def _digest(config: Settings) -> str:
    connection = await asyncpg.connect(config.dsn)
    try:
        return (await ledger_digest(connection)).sha256
    finally:
        await connection.close()


async def _replay_target(settings: Settings, base: Settings, suffix: str) -> Settings:
    """A new prefix and a new migrated database for a replay."""
    dsn = await create_database(settings, f"{base.topic_prefix.strip('.')}_{suffix}")
    await migrate(dsn)
    return with_overrides(base, topic_prefix=f"{base.topic_prefix}{suffix}.", database_url=dsn)


async def _offsets(config: Settings) -> dict[str, dict[str, int]]:
    """Records per partition of every catalog topic, by the broker's end offsets (topics start at 0)."""
    ends = await end_offsets(config, [config.topic(spec) for spec in CATALOG])
    names = {config.topic(spec): spec.name for spec in CATALOG}
    found: dict[str, dict[str, int]] = {}
    for (topic, partition), end in ends.items():
        found.setdefault(names[topic], {})[str(partition)] = end
    return found


async def test_archive_replay_settle_reproduces_the_digest(
    settings: Settings, fresh_settings: Settings, tmp_path: Path
) -> None:
    """Settle, archive, replay the archive into a new prefix and database, settle: same digest; counts exact."""
    rng = random.Random(21)
    accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=30, merchants=5)
    requests = make_requests(
        rng, count=REQUESTS, citizens=citizens, merchants=merchants, agents=agents, employer=employer
    )
    await produce(fresh_settings, accounts)
    await produce(fresh_settings, requests)
    await Settler(fresh_settings).run(until_idle=True)
    original = await _digest(fresh_settings)

    folder = tmp_path / "archive"
    first = await Archiver(fresh_settings, folder).run()
    manifest = load_manifest(folder)
    assert manifest.complete and first.rows_new == manifest.rows > len(accounts) + REQUESTS
    offsets = await _offsets(fresh_settings)
    assert {t: {p: r.rows for p, r in parts.items()} for t, parts in manifest.partitions.items()} == offsets
    assert {t: {p: r.end for p, r in parts.items()} for t, parts in manifest.partitions.items()} == offsets
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')").fetchall()
    assert rows == [(manifest.rows,)]

    again = await Archiver(fresh_settings, folder).run()
    assert again.rows_new == 0 and load_manifest(folder).files == manifest.files

    target = await _replay_target(settings, fresh_settings, "ra")
    summary = await replay(ArchiveSource(folder), target, ReplayFilter())
    assert summary.sent == manifest.rows
    await Settler(target).run(until_idle=True)
    assert await _digest(target) == original

    copied = await read_all(target, ACCOUNTS, expected=len(accounts))
    origin = dict(copied[0].headers)
    assert origin[ORIGINAL_TOPIC] == fresh_settings.topic(ACCOUNTS).encode()
    first_record = copied[0]
    assert int(origin[ORIGINAL_OFFSET]) == first_record.offset  # same partition, same order, from 0

    more = make_requests(rng, count=40, citizens=citizens, merchants=merchants, agents=agents, employer=employer)
    await produce(fresh_settings, more)
    grown = await Archiver(fresh_settings, folder).run()
    assert grown.rows_new == len(more)
    assert load_manifest(folder).files[: len(manifest.files)] == manifest.files


async def test_replay_from_prefix_and_its_refusals(settings: Settings, fresh_settings: Settings) -> None:
    """--from-prefix copies every record; a target with data, a lost start (retention) are refused."""
    rng = random.Random(4)
    accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=10, merchants=3)
    requests = make_requests(rng, count=60, citizens=citizens, merchants=merchants, agents=agents, employer=employer)
    await produce(fresh_settings, accounts)
    await produce(fresh_settings, requests)

    target = await _replay_target(settings, fresh_settings, "rp")
    summary = await replay(PrefixSource(fresh_settings), target, ReplayFilter(only=frozenset({"payment.requested"})))
    wanted = sum(1 for r in requests if r.event_type == "payment.requested")
    assert summary.sent == wanted and summary.by_topic == {PAYMENT_REQUESTS.name: wanted}

    with pytest.raises(SandboxError, match="already holds data"):
        await replay(PrefixSource(fresh_settings), target, ReplayFilter())

    admin = kafka_clients.admin(fresh_settings)
    await admin.start()
    try:
        tp = TopicPartition(fresh_settings.topic(ACCOUNTS), 0)
        await admin.delete_records({tp: RecordsToDelete(before_offset=1)}, timeout_ms=10_000)
    finally:
        await admin.close()
    late = await _replay_target(settings, fresh_settings, "rl")
    with pytest.raises(SandboxError, match="retention") as refused:
        await replay(PrefixSource(fresh_settings), late, ReplayFilter())
    assert "kpsandbox archive" in refused.value.hint


def test_bad_archive_folders_are_refused(fresh_settings: Settings, tmp_path: Path) -> None:
    """A folder without a manifest, with a broken one or a newer format cannot be replayed or archived into."""
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(SandboxError, match="not a kpsandbox archive"):
        ArchiveSource(tmp_path)
    with pytest.raises(SandboxError, match="not empty"):
        Archiver(fresh_settings, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "kpsandbox-archive", "format_version": 99}))
    with pytest.raises(SandboxError, match="format version 99"):
        ArchiveSource(tmp_path)
    (tmp_path / "manifest.json").write_text("{ half")
    with pytest.raises(SandboxError, match="cannot be read"):
        asyncio.run(Archiver(fresh_settings, tmp_path).run())


def test_the_reader_connects_without_librdkafkas_sparse_connection_delay(settings: Settings) -> None:
    """librdkafka held the connection to the broker it learns from the bootstrap's metadata back for
    50 ms ("still suppressed for 49ms"), so connecting took at least that long: 8% of a 30-day
    archive. With sparse connections off, and metadata asked for the run's topics only (not every
    topic the broker holds), it is a few round trips; best of three, to ride out a busy machine."""
    took = []
    for _ in range(3):
        began = time.perf_counter()
        RangeReader(settings, [settings.topic(spec) for spec in CATALOG]).close()
        took.append(time.perf_counter() - began)
    assert min(took) < SUPPRESSED_S, took


async def test_end_offsets_of_topics_that_do_not_exist_are_none_not_a_cancellation(settings: Settings) -> None:
    """With no partition to ask about, end_offsets started a consumer and stopped it at once, and
    aiokafka's stop awaited a task it had cancelled before it ever ran: CancelledError escaped
    (a BaseException, read as "this task was cancelled" by whoever awaited it)."""
    assert await end_offsets(settings, [f"{settings.topic_prefix}no.such.topic.v1"]) == {}
    assert await end_offsets(settings, []) == {}


async def test_end_offsets_answer_without_waiting_out_metadata_backoffs(settings: Settings) -> None:
    """aiokafka's end_offsets on a consumer that knew none of the topics learnt them one at a time,
    sleeping its 100 ms retry backoff each time: 0.61 s for the six catalog topics (the demo's lag
    polls, `bench/archive.py`). The partitions are assigned first, so one metadata request covers
    them all: a few ms. Best of three, to ride out a busy machine."""
    topics = [settings.topic(spec) for spec in CATALOG]
    took = []
    for _ in range(3):
        began = time.perf_counter()
        ends = await end_offsets(settings, topics)
        took.append(time.perf_counter() - began)
    assert {topic for topic, _ in ends} == set(topics)
    assert min(took) < METADATA_BACKOFFS_S, took


def _transactions(config: Settings, topic: str) -> tuple[int, int]:
    """Two committed transactions around an aborted one, on partition 0; (committed records, end offset)."""
    producer = Producer({**kafka_clients.librdkafka_config(config, "admin"), "transactional.id": f"{topic}-tx"})
    producer.init_transactions(10)
    committed = 0
    for batch, commit in ((5, True), (4, False), (3, True)):
        producer.begin_transaction()
        for n in range(batch):
            value = json.dumps({"event_type": "cash.purchase", "n": n}).encode()
            producer.produce(topic, value, key=b"k", partition=0, headers=[("origin", b"test")])
        producer.flush(10)  # in the log before the transaction ends, aborted ones too
        if commit:
            producer.commit_transaction(10)
            committed += batch
        else:
            producer.abort_transaction(10)
    producer.flush(10)
    consumer = Consumer({**kafka_clients.librdkafka_config(config, "admin"), "group.id": f"{topic}-ends"})
    try:
        _, end = consumer.get_watermark_offsets(KafkaTopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    return committed, end


async def test_transaction_markers_and_aborted_records_archive_to_the_end(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """A partition ending in a commit marker, with an aborted transaction inside: the archive holds the
    committed records only, reaches the end offset (markers included) and a re-run finds nothing new."""
    topic = fresh_settings.topic(CASH)
    committed, end = _transactions(fresh_settings, topic)
    assert end == committed + 4 + 3  # every record, aborted ones, and one marker per transaction

    folder = tmp_path / "tx"
    summary = await asyncio.wait_for(Archiver(fresh_settings, folder).run(), 60)
    manifest = load_manifest(folder)
    assert summary.rows_new == committed and manifest.complete
    assert manifest.partitions[CASH.name]["0"].end == end and manifest.partitions[CASH.name]["0"].rows == committed
    table = duckdb.sql(f"SELECT headers, event_type FROM read_parquet('{folder}/topic={CASH.name}/**/*.parquet')")
    rows = table.fetchall()
    assert len(rows) == committed and all(h == [{"name": "origin", "value": b"test"}] for h, _ in rows)
    again = await asyncio.wait_for(Archiver(fresh_settings, folder).run(), 60)
    assert again.rows_new == 0
