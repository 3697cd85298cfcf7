"""The archive format, its part files and the replay filters, without Kafka."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consumers.archive import archiver as archiver_module
from consumers.archive import reader as reader_module
from consumers.archive import writer as writer_module
from consumers.archive.archiver import Archiver
from consumers.archive.columns import event_date
from consumers.archive.reader import RawChunk
from consumers.archive.writer import PartWriter
from infra import archive as archive_format
from infra import kafka_clients
from infra.archive import Manifest, RunInfo, load_manifest, part_path, save_manifest, schema_versions
from infra.errors import SandboxError
from infra.settings import Settings
from producers.replay.filters import ReplayFilter, parse_time, parse_types
from producers.replay.sources import archive_filter
from tests.integration.test_ledger_support import free_port

EVENT = {
    "event_type": "payment.requested",
    "event_id": "8d0f7c1e-0000-4000-8000-000000000001",
    "occurred_at": "2026-01-03T23:59:59.500000Z",
    "correlation_id": "8d0f7c1e-0000-4000-8000-000000000002",
    "kind": "p2p",
    "rail": "raast",
    "payer_account_id": "acc_0000000000000001",
    "payee_account_id": "acc_0000000000000002",
    "amount": 12_345,
}


def test_part_paths_follow_topic_and_date() -> None:
    """Part files live under topic=<name>/date=<YYYY-MM-DD>/ with a zero-padded number."""
    assert part_path("kp.cash.v1", "2026-01-02", 7) == "topic=kp.cash.v1/date=2026-01-02/part-000007.parquet"


def test_event_date_is_the_utc_date_of_occurred_at_or_the_record_time() -> None:
    """The date comes from occurred_at (converted to UTC), else from the record timestamp."""
    assert event_date({"occurred_at": "2026-01-03T23:59:59Z"}, 0) == "2026-01-03"
    assert event_date({"occurred_at": "2026-01-04T01:00:00+05:00"}, 0) == "2026-01-03"
    assert event_date(None, 86_400_000 * 2) == "1970-01-03"


def test_manifest_round_trip_and_refusals(tmp_path: Path) -> None:
    """A saved manifest loads back; a newer format or schema version is refused with a hint."""
    manifest = Manifest(run=RunInfo(run_id="r1", prefix="r1."))
    save_manifest(tmp_path, manifest)
    assert load_manifest(tmp_path) == manifest
    raw = json.loads((tmp_path / "manifest.json").read_text())
    newer = dict(schema_versions(), **{"payment.settled": 99})
    (tmp_path / "manifest.json").write_text(json.dumps(raw | {"schema_versions": newer}))
    with pytest.raises(SandboxError, match="newer schema") as refused:
        load_manifest(tmp_path)
    assert "upgrade" in refused.value.hint
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SandboxError, match="not a kpsandbox archive manifest"):
        load_manifest(tmp_path)


def test_writer_sorts_by_partition_and_offset_and_types_columns(tmp_path: Path) -> None:
    """A part file is sorted by (partition, offset), checksummed, with typed columns from the JSON value."""
    writer = PartWriter(tmp_path, next_part=3)
    value = json.dumps(EVENT).encode()
    writer.add("kp.payments.requests.v1", 1, 5, 1_000, b"k", [("h", b"v")], value)
    writer.add("kp.payments.requests.v1", 0, 9, 1_000, b"k", [], value)
    writer.add("kp.payments.requests.v1", 1, 4, 1_000, None, [], b"\x00 not json")
    poison, written = writer.flush()  # the poison row has no occurred_at: dated by its record timestamp
    assert poison.path == part_path("kp.payments.requests.v1", "1970-01-01", 3) and poison.rows == 1
    assert written.path == part_path("kp.payments.requests.v1", "2026-01-03", 4) and written.rows == 2
    table = pq.read_table(tmp_path / written.path)
    assert table["offset"].to_pylist() == [9, 5] and table["amount"].to_pylist() == [12_345, 12_345]
    assert table["occurred_at"].type == pa.timestamp("us", tz="UTC")
    assert written.offsets == {"0": (9, 9), "1": (5, 5)}
    assert writer.next_part == 5 and writer.buffered == 0 and writer.flush() == []


def test_part_files_keep_min_max_statistics_for_numbers_and_times_only(tmp_path: Path) -> None:
    """Readers prune on the numeric and time columns' ranges (DuckDB on occurred_at, offset, amount);
    ids, tokens, labels and JSON values carry none (random ranges prune nothing, and computing them
    was a tenth of the archive's CPU)."""
    writer = PartWriter(tmp_path, next_part=0)
    for offset in (4, 7):
        writer.add("kp.payments.requests.v1", 0, offset, 1_000, b"k", [], _event_on("2026-01-03", offset))
    (written,) = writer.flush()
    writer.close()
    group = pq.ParquetFile(tmp_path / written.path).metadata.row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics for i in range(group.num_columns)}
    ranged = {name for name, found in stats.items() if found is not None and found.has_min_max}
    assert {"partition", "offset", "timestamp", "occurred_at", "amount"} <= ranged
    assert not ranged & {"value", "key", "event_id", "event_type", "payer_account_id", "kind", "topic"}
    assert (stats["offset"].min, stats["offset"].max) == (4, 7)


def test_full_disk_is_a_two_line_error_and_leaves_no_part_file(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC while writing a part file: SandboxError with a hint, no part file, no temporary file."""
    archiver = Archiver(Settings(topic_prefix="full."), tmp_path / "a")
    archiver.writer.add("kp.cash.v1", 0, 0, 0, None, [], json.dumps(EVENT).encode())

    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_format.os, "replace", no_space)
    with pytest.raises(SandboxError, match="disk is full") as refused:
        archiver._checkpoint(complete=True)
    assert "re-run" in refused.value.hint
    assert not [p for p in (tmp_path / "a").rglob("*") if p.is_file()]


def test_leftover_part_files_are_removed_on_resume(tmp_path: Path) -> None:
    """A part file not listed in the manifest (an interrupted run) is removed before archiving again."""
    save_manifest(tmp_path, Manifest(run=RunInfo(prefix="r.")))
    orphan = tmp_path / part_path("kp.cash.v1", "2026-01-01", 0)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    archiver_module._prepare_folder(tmp_path, "r.")
    assert not orphan.exists()
    with pytest.raises(SandboxError, match=r"prefix 'r\.'"):
        archiver_module._prepare_folder(tmp_path, "other.")


def test_filters_window_types_and_accounts() -> None:
    """--from/--to is half-open on occurred_at; accounts before --from stay; non-events go with any filter."""
    start, end = parse_time("2026-01-02", "--from"), parse_time("2026-01-03T00:00:00Z", "--to")
    assert start == datetime(2026, 1, 2, tzinfo=UTC)
    window = ReplayFilter(start=start, end=end)
    assert window.keeps("payment.requested", datetime(2026, 1, 2, 12, tzinfo=UTC))
    assert not window.keeps("payment.requested", end)
    assert not window.keeps("payment.requested", datetime(2026, 1, 1, tzinfo=UTC))
    assert window.keeps("account.opened", datetime(2026, 1, 1, tzinfo=UTC))
    assert not window.keeps(None, None) and ReplayFilter().keeps(None, None)
    assert parse_types("cash.in, cash.out") == {"cash.in", "cash.out"}


def test_bad_filters_are_refused() -> None:
    """--from after --to, an unknown event type and a non-date are two-line errors."""
    with pytest.raises(SandboxError, match="is not before"):
        ReplayFilter(start=parse_time("2026-02-01", "--from"), end=parse_time("2026-01-01", "--to"))
    with pytest.raises(SandboxError, match=r"payment\.teleported"):
        parse_types("payment.teleported")
    with pytest.raises(SandboxError, match="not a date"):
        parse_time("yesterday", "--from")


def test_archive_filter_matches_the_python_filter() -> None:
    """The Parquet scan filter keeps the same rows as ReplayFilter.keeps."""
    times = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    table = pa.table(
        {
            "event_type": ["account.opened", "cash.in", "cash.in", None],
            "occurred_at": pa.array([*times[:1], *times[1:], None], pa.timestamp("us", tz="UTC")),
        }
    )
    filt = ReplayFilter(start=times[1], end=times[2], only=frozenset({"cash.in", "account.opened"}))
    expression = archive_filter(filt)
    assert expression is not None
    kept = table.filter(expression).to_pylist()
    expected = [row for row in table.to_pylist() if filt.keeps(row["event_type"], row["occurred_at"])]
    assert kept == expected and len(kept) == 2


def _event_on(day: str, n: int) -> bytes:
    return json.dumps(EVENT | {"occurred_at": f"{day}T10:00:00Z", "amount": n}).encode()


def test_dates_seal_early_and_a_late_row_gets_its_own_file(tmp_path: Path) -> None:
    """Once both partitions passed a date it is sealed before flush; a row arriving later for a sealed
    date (a producer out of time order) lands in one more part file for that date, nothing lost."""
    topic = "kp.payments.requests.v1"
    writer = PartWriter(tmp_path, next_part=0)
    days = ["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-02"]
    values: list[bytes | None] = [_event_on(day, n) for n, day in enumerate(days, start=1)]
    first = RawChunk([0, 1, 0, 1], [0, 0, 1, 1], [0] * 4, [None] * 4, [None] * 4, values)
    writer.add_chunk(topic, first, frozenset({0, 1}))
    for future in writer._topics[topic].building:  # the build runs on a worker; wait for it here
        future.result()
    late = RawChunk([0], [2], [0], [None], [None], [_event_on("2026-01-01", 5)])
    writer.add_chunk(topic, late, frozenset({0, 1}))  # takes the first batch: 2026-01-01 sealed
    assert len(writer._topics[topic].sealed) == 1
    writer.add_chunk(topic, RawChunk(), frozenset())  # both partitions read to their end
    written = writer.flush()
    writer.close()
    by_date = sorted((f.date, f.rows, f.offsets) for f in written)
    assert by_date == [
        ("2026-01-01", 1, {"0": (2, 2)}),
        ("2026-01-01", 2, {"0": (0, 0), "1": (0, 0)}),
        ("2026-01-02", 2, {"0": (1, 1), "1": (1, 1)}),
    ]
    amounts = sorted(a for f in written for a in pq.read_table(tmp_path / f.path)["amount"].to_pylist())
    assert amounts == [1, 2, 3, 4, 5]


def test_runs_from_interleaved_batches_make_files_in_partition_and_offset_order(tmp_path: Path) -> None:
    """Batches that interleave partitions and dates (as librdkafka hands them over) still give one
    file per date, sorted by (partition, offset), with each partition's first and last offset."""
    topic = "kp.payments.requests.v1"
    writer = PartWriter(tmp_path, next_part=0)
    first = RawChunk(
        [1, 1, 0, 0, 1],
        [0, 1, 0, 1, 2],
        [0] * 5,
        [None] * 5,
        [None] * 5,
        [
            _event_on(day, n)
            for n, day in enumerate(["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-01", "2026-01-02"])
        ],
    )
    second = RawChunk([0, 1], [2, 3], [0] * 2, [None] * 2, [None] * 2, [_event_on("2026-01-02", 9)] * 2)
    writer.add_chunk(topic, first)
    writer.add_chunk(topic, second)
    written = {f.date: f for f in writer.flush()}
    writer.close()
    day1, day2 = (pq.read_table(tmp_path / written[d].path) for d in ("2026-01-01", "2026-01-02"))
    assert list(zip(day1["partition"].to_pylist(), day1["offset"].to_pylist(), strict=True)) == [(0, 0), (0, 1), (1, 0)]
    assert list(zip(day2["partition"].to_pylist(), day2["offset"].to_pylist(), strict=True)) == [
        (0, 2),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    assert written["2026-01-01"].offsets == {"0": (0, 1), "1": (0, 0)}
    assert written["2026-01-02"].offsets == {"0": (2, 2), "1": (1, 3)}


def test_a_batch_runs_split_on_date_and_partition_and_date_poison_by_its_record_time() -> None:
    """A build's runs: a new run wherever the (date, partition) changes, in table order, with the
    first and last offsets; a value that is not an event takes its date from the record timestamp."""
    topic = "kp.payments.requests.v1"
    jan_2_ms = int(datetime(2026, 1, 2, 12, tzinfo=UTC).timestamp() * 1000)
    values: list[bytes | None] = [
        _event_on("2026-01-01", 1),
        _event_on("2026-01-01", 2),
        b"not json",  # poison: dated by its record timestamp (2026-01-02)
        _event_on("2026-01-02", 4),
        _event_on("2026-01-01", 5),
    ]
    chunk = RawChunk([3, 3, 3, 3, 7], [10, 11, 12, 13, 40], [0, 0, jan_2_ms, 0, 0], [None] * 5, [None] * 5, values)
    built = writer_module._build(topic, chunk)
    assert [(str(r.day), r.partition, r.begin, r.rows, r.first, r.last) for r in built.runs] == [
        ("2026-01-01", 3, 0, 2, 10, 11),
        ("2026-01-02", 3, 2, 2, 12, 13),
        ("2026-01-01", 7, 4, 1, 40, 40),
    ]
    assert built.table["headers"].to_pylist() == [[]] * 5


def test_batches_without_headers_share_one_column_of_empty_lists_sliced_to_their_size() -> None:
    """Every size of batch gets exactly as many empty header lists as it has rows, also past the
    shared column's least size; a batch with headers keeps them."""
    from consumers.archive import columns

    for rows in (1, 9_999, columns.EMPTY_HEADERS_ROWS, columns.EMPTY_HEADERS_ROWS + 1):
        made = columns._headers([None] * rows)
        assert len(made) == rows and made.null_count == 0
        assert made.value_lengths().to_pylist() == [0] * rows
    mixed = columns._headers([None, [("kpsandbox-tenant", b"t1")]])
    assert mixed.to_pylist() == [[], [{"name": "kpsandbox-tenant", "value": b"t1"}]]


def test_a_failed_flush_leaves_neither_part_files_nor_temporary_files(tmp_path: Path, monkeypatch) -> None:
    """The disk fills up after one part file was renamed into place: that file and every encoded
    temporary file are removed, so nothing outside the manifest is left looking complete."""
    writer = PartWriter(tmp_path, next_part=0)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        writer.add("kp.payments.requests.v1", 0, int(day[-1]), 0, None, [], _event_on(day, 1))
    renamed = []
    real_replace = writer_module.os.replace

    def replace_once(src: Path, dst: Path) -> None:
        if renamed:
            raise OSError(errno.ENOSPC, "No space left on device")
        renamed.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(writer_module.os, "replace", replace_once)
    with pytest.raises(OSError):
        writer.flush()
    writer.close()
    assert len(renamed) == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_unreachable_kafka_is_one_clear_error_not_a_page_of_retries(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka retries a refused connection every few hundred ms and logs each attempt from
    each client: `kpsandbox archive` printed ~190 identical lines before its error. Each distinct
    line is now logged once; the error names the fix."""
    monkeypatch.setattr(reader_module, "CONNECT_TIMEOUT_S", 3.0)
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with caplog.at_level(logging.DEBUG, logger=reader_module.log.name), pytest.raises(SandboxError) as caught:
        reader_module.RangeReader(settings, ["kp.cash.v1"])
    assert "not reachable" in caught.value.message and "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS" in caught.value.hint
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("Connection refused" in line for line in shown), shown  # the cause is still said once
    assert len(shown) == len(set(shown)), f"{len(shown)} lines, {len(set(shown))} distinct"


def test_a_failure_told_again_with_other_timings_is_shown_once() -> None:
    """librdkafka's lines differ only in "(after 0ms …)" / "1ms" and "N identical error(s)
    suppressed" between attempts: one line shown. Another broker's failure is another line."""
    logger = kafka_clients.librdkafka_logger(f"kpsandbox.test.once.{uuid.uuid4().hex}")
    lines = [
        "FAIL [c#consumer-1] 127.0.0.1:19092/bootstrap: Connection refused (after 0ms in state CONNECT)",
        "FAIL [c#consumer-1] 127.0.0.1:19092/bootstrap: Connection refused (after 1ms in state CONNECT)",
        "FAIL [c#consumer-1] 127.0.0.1:19092/bootstrap: Connection refused (after 0ms in state "
        "CONNECT, 4 identical error(s) suppressed)",
        "FAIL [c#consumer-1] 127.0.0.1:19094/bootstrap: Connection refused (after 0ms in state CONNECT)",
    ]
    shown = [line for line in lines if logger.filter(logging.makeLogRecord({"msg": line, "levelno": 40}))]
    assert shown == [lines[0], lines[3]]


def test_the_archive_allocates_from_the_system_pool_and_gives_the_default_back(tmp_path: Path, monkeypatch) -> None:
    """Arrow's default pool (mimalloc in the wheels) returned each batch's buffers to the OS and
    faulted them back as zeroed huge pages: 7% of the archive's CPU in `perf`, and archive ÷ raw
    consume 0.35–0.36 against 0.40–0.51 with glibc's allocator (bench/RESULTS.md, "Run 8"). The archive's
    work runs on the system pool; the process's default is restored afterwards."""
    before = pa.default_memory_pool().backend_name
    seen: list[str] = []
    archiver = Archiver(Settings(), tmp_path / "a")
    monkeypatch.setattr(archiver, "_archive", lambda progress: seen.append(pa.default_memory_pool().backend_name))
    asyncio.run(archiver.run())
    assert seen == ["system"]
    assert pa.default_memory_pool().backend_name == before


def test_the_archive_collects_garbage_rarely_and_restores_the_collector(tmp_path: Path, monkeypatch) -> None:
    """With CPython's default thresholds the cyclic collector ran every 700 new containers (a tuple per
    record's timestamp, lists per batch) and re-walked everything alive in the process each time: an
    archive in a process holding 93,389 raw records took 1.51–1.67 s of CPU against 1.27–1.28 s with
    this policy (bench/RESULTS.md, "Run 8"). The archive freezes what lived before it and collects
    rarely; both undone afterwards."""
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, int, int], int]] = []
    archiver = Archiver(Settings(), tmp_path / "a")
    monkeypatch.setattr(archiver, "_archive", lambda progress: seen.append((gc.get_threshold(), gc.get_freeze_count())))
    asyncio.run(archiver.run())
    assert seen and seen[0][0] == archiver_module.GC_THRESHOLDS and seen[0][1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
