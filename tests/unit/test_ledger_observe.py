"""The ledger's /metrics: LedgerMetrics values and bounded labels, and its HTTP server (names, labels and
help texts against the catalogue: tests/unit/test_metric_catalogue.py)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from typing import get_args

import pytest

from consumers.ledger.observe import (
    DEAD_LETTER_REASONS,
    OTHER,
    RESULTS,
    RETRY_KINDS,
    LedgerMetrics,
    start_metrics_server,
    stop_metrics_server,
)
from infra.errors import SandboxError
from infra.metrics_http import bound_port
from schemas.deadletter import DeadLetterReason
from schemas.payments import RejectedResult, SettledResult

GROUP = "kp-ledger"
HTTP_TIMEOUT_S = 5.0
PROMTOOL_TIMEOUT_S = 60
NOT_LOCAL_HOST = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never an address of this machine


def _metrics(now: float = 1_000.0) -> LedgerMetrics:
    return LedgerMetrics(group=GROUP, now=lambda: now)


def _value(m: LedgerMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {"group": GROUP, **labels})


def _label_values(m: LedgerMetrics, name: str, label: str) -> set[str]:
    return {s.labels[label] for family in m.registry.collect() for s in family.samples if s.name == name}


def _busy(m: LedgerMetrics) -> LedgerMetrics:
    """A ledger that has done a bit of everything, with two assigned partitions."""
    m.set_assigned([0, 1])
    m.set_partition(0, lag=7, clock=datetime(2026, 3, 1, 12, tzinfo=UTC))
    m.set_partition(1, lag=0, clock=None)
    m.batch_settled(results={"created": 5, "exceeds_credits": 1}, requests=6, transfers=5, seconds=0.03)
    m.batch_fenced()
    m.retried("relay")
    m.dead_lettered("not_json", 2)
    m.expired(3)
    m.set_outbox(rows=12, oldest_age_s=1.5)
    return m


def test_batches_requests_and_transfers_add_up() -> None:
    """Two batches: counters sum, results go to their codes, the histogram buckets by `le`, progress is stamped."""
    clock = [100.0]
    m = LedgerMetrics(group=GROUP, now=lambda: clock[0])
    assert _value(m, "kpsandbox_ledger_last_progress_timestamp_seconds") == 100.0  # the start, until a batch
    clock[0] = 250.0
    m.batch_settled(results={"created": 3, "exists": 1}, requests=4, transfers=3, seconds=0.005)
    m.batch_settled(results={"created": 2, "exceeds_credits": 1}, requests=3, transfers=2, seconds=3.0)
    assert _value(m, "kpsandbox_ledger_batches_total") == 2
    assert _value(m, "kpsandbox_ledger_requests_total", result="created") == 5
    assert _value(m, "kpsandbox_ledger_requests_total", result="exists") == 1
    assert _value(m, "kpsandbox_ledger_requests_total", result="exceeds_credits") == 1
    assert _value(m, "kpsandbox_ledger_requests_total", result="account_not_found") == 0
    assert _value(m, "kpsandbox_ledger_transfers_total") == 5
    assert _value(m, "kpsandbox_ledger_batch_seconds_bucket", le="0.005") == 1  # le is inclusive
    assert _value(m, "kpsandbox_ledger_batch_seconds_bucket", le="2.5") == 1
    assert _value(m, "kpsandbox_ledger_batch_seconds_bucket", le="5.0") == 2
    assert _value(m, "kpsandbox_ledger_batch_seconds_count") == 2
    assert _value(m, "kpsandbox_ledger_batch_seconds_sum") == pytest.approx(3.005)
    assert _value(m, "kpsandbox_ledger_last_progress_timestamp_seconds") == 250.0


def test_fences_retries_dead_letters_expiries_and_outbox() -> None:
    """Each event method moves exactly its own series."""
    m = _metrics()
    m.batch_fenced()
    m.batch_fenced()
    m.retried("db_unavailable")
    m.retried("assignment")
    m.retried("assignment")
    m.dead_lettered("schema_invalid")
    m.dead_lettered("retries_exhausted", 4)
    m.expired(3)
    m.expired(2)
    m.set_outbox(rows=40, oldest_age_s=2.5)
    m.set_outbox(rows=12, oldest_age_s=0.25)
    assert _value(m, "kpsandbox_ledger_fenced_batches_total") == 2
    assert _value(m, "kpsandbox_ledger_retries_total", kind="db_unavailable") == 1
    assert _value(m, "kpsandbox_ledger_retries_total", kind="assignment") == 2
    assert _value(m, "kpsandbox_ledger_retries_total", kind="relay") == 0
    assert _value(m, "kpsandbox_ledger_dead_letters_total", reason="schema_invalid") == 1
    assert _value(m, "kpsandbox_ledger_dead_letters_total", reason="retries_exhausted") == 4
    assert _value(m, "kpsandbox_ledger_expired_transfers_total") == 5
    assert _value(m, "kpsandbox_ledger_outbox_rows") == 12
    assert _value(m, "kpsandbox_ledger_outbox_oldest_age_seconds") == 0.25
    assert _value(m, "kpsandbox_ledger_batches_total") == 0


def test_label_sets_are_bounded_and_complete_from_the_start() -> None:
    """Every result code, reason and kind is exported at zero before anything happens; unknown values go to
    `other`, so the label sets never grow."""
    m = _metrics()
    assert set(RESULTS) == {*get_args(SettledResult), *get_args(RejectedResult), OTHER}
    assert set(DEAD_LETTER_REASONS) == {*get_args(DeadLetterReason), OTHER}
    assert set(RETRY_KINDS) == {"db_unavailable", "kafka_unavailable", "batch_refused", "relay", "assignment", OTHER}
    before = {
        "kpsandbox_ledger_requests_total": _label_values(m, "kpsandbox_ledger_requests_total", "result"),
        "kpsandbox_ledger_dead_letters_total": _label_values(m, "kpsandbox_ledger_dead_letters_total", "reason"),
        "kpsandbox_ledger_retries_total": _label_values(m, "kpsandbox_ledger_retries_total", "kind"),
    }
    assert before == {
        "kpsandbox_ledger_requests_total": set(RESULTS),
        "kpsandbox_ledger_dead_letters_total": set(DEAD_LETTER_REASONS),
        "kpsandbox_ledger_retries_total": set(RETRY_KINDS),
    }
    for n in range(50):
        m.batch_settled(results={f"made_up_{n}": 1}, requests=1, transfers=0, seconds=0.01)
        m.retried(f"kind_{n}")
        m.dead_lettered(f"reason_{n}")
    assert _label_values(m, "kpsandbox_ledger_requests_total", "result") == set(RESULTS)
    assert _value(m, "kpsandbox_ledger_requests_total", result=OTHER) == 50
    assert _value(m, "kpsandbox_ledger_retries_total", kind=OTHER) == 50
    assert _value(m, "kpsandbox_ledger_dead_letters_total", reason=OTHER) == 50
    groups = {s.labels.get("group") for family in m.registry.collect() for s in family.samples}
    assert groups == {GROUP}


def test_partition_series_follow_the_assignment() -> None:
    """Lag and clock exist only for assigned partitions: a revoked partition's series go, updates for it are ignored."""
    m = _metrics()
    m.set_assigned([0, 1, 2])
    m.set_partition(0, lag=5, clock=datetime(2026, 1, 1, tzinfo=UTC))
    m.set_partition(1, lag=0, clock=datetime(2026, 1, 2, tzinfo=UTC))
    m.set_partition(2, lag=3, clock=None)
    m.set_partition(7, lag=99, clock=datetime(2026, 1, 3, tzinfo=UTC))  # not ours
    assert _value(m, "kpsandbox_ledger_assigned_partitions") == 3
    assert _label_values(m, "kpsandbox_ledger_lag_messages", "partition") == {"0", "1", "2"}
    assert _label_values(m, "kpsandbox_ledger_clock_seconds", "partition") == {"0", "1"}
    assert _value(m, "kpsandbox_ledger_lag_messages", partition="0") == 5
    assert _value(m, "kpsandbox_ledger_clock_seconds", partition="1") == datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    m.set_assigned([1])
    m.set_partition(0, lag=8, clock=datetime(2026, 1, 4, tzinfo=UTC))  # a late update after the revocation
    assert _value(m, "kpsandbox_ledger_assigned_partitions") == 1
    assert _label_values(m, "kpsandbox_ledger_lag_messages", "partition") == {"1"}
    assert _label_values(m, "kpsandbox_ledger_clock_seconds", "partition") == {"1"}
    m.set_partition(1, lag=2, clock=None)  # the clock is forgotten, the lag kept
    assert _label_values(m, "kpsandbox_ledger_clock_seconds", "partition") == set()
    assert _value(m, "kpsandbox_ledger_lag_messages", partition="1") == 2
    m.set_assigned([])
    assert _value(m, "kpsandbox_ledger_assigned_partitions") == 0
    assert _label_values(m, "kpsandbox_ledger_lag_messages", "partition") == set()


def _http_get(port: int, path: str) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        response = b""
        while chunk := conn.recv(65_536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


async def test_server_answers_metrics_over_http() -> None:
    """A real GET /metrics on an ephemeral port returns the series; another path is a 404."""
    m = _busy(_metrics())
    server = await start_metrics_server(m, host="127.0.0.1", port=0)
    try:
        status, body = await asyncio.to_thread(_http_get, bound_port(server), "/metrics")
        missing, _ = await asyncio.to_thread(_http_get, bound_port(server), "/nope")
        m.batch_settled(results={"created": 1}, requests=1, transfers=1, seconds=0.01)
        _, later = await asyncio.to_thread(_http_get, bound_port(server), "/metrics")
    finally:
        await stop_metrics_server(server)
    assert status == "HTTP/1.1 200 OK" and missing.startswith("HTTP/1.1 404")
    assert b'kpsandbox_ledger_requests_total{group="kp-ledger",result="created"} 5.0' in body
    assert b'kpsandbox_ledger_lag_messages{group="kp-ledger",partition="0"} 7.0' in body
    assert b'kpsandbox_ledger_requests_total{group="kp-ledger",result="created"} 6.0' in later  # read at scrape


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
async def test_promtool_accepts_the_scrape() -> None:
    """`promtool check metrics` accepts what the server returns, with no lint findings."""
    server = await start_metrics_server(_busy(_metrics()), host="127.0.0.1", port=0)
    try:
        _, body = await asyncio.to_thread(_http_get, bound_port(server), "/metrics")
    finally:
        await stop_metrics_server(server)
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                            timeout=PROMTOOL_TIMEOUT_S, check=False)  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
    assert b"kpsandbox_ledger_batch_seconds_bucket" in body


async def test_busy_port_names_the_port_and_the_setting() -> None:
    """A taken port raises SandboxError naming the port and KPSANDBOX_LEDGER_METRICS_PORT."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(SandboxError) as caught:
            await start_metrics_server(_metrics(), host="127.0.0.1", port=port)
    assert str(port) in caught.value.message and "ledger" in caught.value.message
    assert "KPSANDBOX_LEDGER_METRICS_PORT" in caught.value.hint


async def test_host_not_of_this_machine_names_the_host_setting() -> None:
    """A bind host that is not a local address raises SandboxError naming KPSANDBOX_METRICS_HOST."""
    with pytest.raises(SandboxError) as caught:
        await start_metrics_server(_metrics(), host=NOT_LOCAL_HOST, port=0)
    assert NOT_LOCAL_HOST in caught.value.message and "KPSANDBOX_METRICS_HOST" in caught.value.hint
