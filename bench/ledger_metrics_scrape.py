"""The ledger's /metrics scrape time, against a static HTTP server of the same body size, same run.

    .venv/bin/python bench/ledger_metrics_scrape.py [--scrapes 500] [--partitions 12] [--calls 100000]

Fills a LedgerMetrics as a busy ledger would (every result code, dead-letter reason and retry
kind non-zero, every histogram bucket used, lag and clock on each assigned partition), serves it
with `start_metrics_server` on a free port, and times whole HTTP scrapes (connect, GET /metrics,
read to the end) from a client thread, as Prometheus would. The baseline is an asyncio server on
the same event loop answering a static body of exactly the same size, so the ratio isolates the
cost of building the exposition text. Also times the per-batch `batch_settled` call the consumer
loop pays. Prints one JSON object; target: p99 ≤ 20 ms per scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.ledger.observe import (
    BATCH_SECONDS_BUCKETS,
    DEAD_LETTER_REASONS,
    RESULTS,
    RETRY_KINDS,
    LedgerMetrics,
    start_metrics_server,
    stop_metrics_server,
)
from infra.metrics_http import CONTENT_TYPE, bound_port

HTTP_TIMEOUT_S: Final = 5.0
TARGET_MS: Final = 20.0
WARMUP_SCRAPES: Final = 20
BATCH_RESULTS: Final = {"created": 3_900, "exists": 40, "exceeds_credits": 55, "account_not_found": 5}


def busy_metrics(partitions: int) -> LedgerMetrics:
    """A LedgerMetrics after a long busy run: every labelled series non-zero."""
    m = LedgerMetrics(group="kp-ledger")
    m.set_assigned(range(partitions))
    clock = datetime(2026, 3, 1, tzinfo=UTC)
    for p in range(partitions):
        m.set_partition(p, lag=1_000 + 37 * p, clock=clock + timedelta(seconds=p))
    for n, seconds in enumerate((*BATCH_SECONDS_BUCKETS, 30.0) * 50):
        m.batch_settled(results={RESULTS[n % len(RESULTS)]: 4_000}, requests=4_000, transfers=3_900, seconds=seconds)
    for kind in RETRY_KINDS:
        m.retried(kind)
    for reason in DEAD_LETTER_REASONS:
        m.dead_lettered(reason, 3)
    m.batch_fenced()
    m.expired(120)
    m.set_outbox(rows=2_345, oldest_age_s=0.8)
    return m


def _scrape(port: int) -> bytes:
    """One whole scrape: connect, GET /metrics, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65_536):
            chunks.append(chunk)
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {response[:80]!r}")
    return response.partition(b"\r\n\r\n")[2]


async def _time_scrapes(port: int, scrapes: int) -> tuple[list[float], bytes]:
    body = b""
    for _ in range(WARMUP_SCRAPES):
        body = await asyncio.to_thread(_scrape, port)
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        body = await asyncio.to_thread(_scrape, port)
        times.append((time.perf_counter() - started) * 1000)
    return times, body


async def _static_server(body: bytes) -> asyncio.Server:
    """The baseline: the same HTTP framing and event loop, a body computed once."""
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: " + CONTENT_TYPE.encode() + b"\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _percentile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def per_call_us(calls: int) -> float:
    """Microseconds per `batch_settled` with a typical batch's result counts."""
    m = LedgerMetrics(group="kp-ledger")
    started = time.perf_counter()
    for _ in range(calls):
        m.batch_settled(results=BATCH_RESULTS, requests=4_000, transfers=3_900, seconds=0.3)
    return (time.perf_counter() - started) / calls * 1e6


async def run(scrapes: int, partitions: int) -> dict[str, object]:
    """Times the ledger's scrapes, then the static baseline's, in one process and one event loop."""
    metrics = busy_metrics(partitions)
    server = await start_metrics_server(metrics, host="127.0.0.1", port=0)
    try:
        ledger_ms, body = await _time_scrapes(bound_port(server), scrapes)
    finally:
        await stop_metrics_server(server)
    baseline = await _static_server(body)
    try:
        baseline_ms, static_body = await _time_scrapes(bound_port(baseline), scrapes)
    finally:
        baseline.close()
        await baseline.wait_closed()
    assert len(static_body) == len(body)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    ledger_p50, baseline_p50 = statistics.median(ledger_ms), statistics.median(baseline_ms)
    return {
        "scrapes": scrapes,
        "partitions": partitions,
        "body_bytes": len(body),
        "samples": samples,
        "ledger_ms_p50": round(ledger_p50, 3),
        "ledger_ms_p99": round(_percentile(ledger_ms, 0.99), 3),
        "ledger_ms_max": round(max(ledger_ms), 3),
        "baseline_ms_p50": round(baseline_p50, 3),
        "baseline_ms_p99": round(_percentile(baseline_ms, 0.99), 3),
        "ratio_p50": round(ledger_p50 / baseline_p50, 2),
        "target_ms": TARGET_MS,
        "within_target": _percentile(ledger_ms, 0.99) <= TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--calls", type=int, default=100_000, help="batch_settled calls to time")
    args = parser.parse_args()
    result = asyncio.run(run(args.scrapes, args.partitions))
    result["batch_settled_us_per_call"] = round(per_call_us(args.calls), 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
