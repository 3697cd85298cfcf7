"""Scrape time of each exporter's /metrics (issue 12: ≤ 50 ms), against a static server of the same bytes.

    .venv/bin/python bench/scrape.py [--scrapes 300] [--partitions 12]

One process, one event loop, the four exporters as they serve in production, each with the state of
a busy sandbox:
- `kpsandbox` (the metrics consumer's collector, infra/metrics_http.py): every label combination the
  exporter always exports (11 districts + `other` × genders, instruments, rails, outcomes, …) plus
  consumer lag for both groups on every catalog topic × PARTITIONS partitions;
- `kpsandbox-ledger`: bench/ledger_metrics_scrape.py's busy LedgerMetrics (every series non-zero);
- `kpsandbox-api`: the real FastAPI app (create_app, no lifespan) under uvicorn, after a request to
  every route template with three statuses each, so every request series and histogram exists;
- `kpsandbox-webhooks`: every attempt result, histogram bucket and outcome non-zero.
A scrape is a whole HTTP exchange from a client thread, as Prometheus does it: connect, GET /metrics,
read to the end. The baseline, in the same run, is an asyncio server answering a precomputed body of
exactly the same size, so `÷ baseline` isolates building the exposition text. Prints a table and one
JSON line; target: p99 ≤ 50 ms for every exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from bench.ledger_metrics_scrape import _static_server, busy_metrics
from bench.ledger_metrics_scrape import _time_scrapes as _times
from consumers.ledger.observe import start_metrics_server as serve_ledger
from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import new_registry
from consumers.metrics.exporter import serve as serve_consumer
from consumers.webhooks.metrics import ATTEMPT_RESULTS, WebhookMetrics
from consumers.webhooks.metrics import start_metrics_server as serve_webhooks
from infra.metrics_http import bound_port
from infra.settings import Settings
from producers.api.app import create_app
from schemas.metrics import WEBHOOK_ATTEMPT_BUCKETS_S
from schemas.topics import CATALOG

TARGET_MS: Final = 50.0
SERVER_START_S: Final = 10.0
API_STATUSES: Final = (200, 404, 422)

Serving = Callable[[], contextlib.AbstractAsyncContextManager[int]]  # yields the port it listens on


@contextlib.asynccontextmanager
async def _server(start: Awaitable[asyncio.Server]) -> AsyncIterator[int]:
    server = await start
    try:
        yield bound_port(server)
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def _static(body: bytes) -> AsyncIterator[int]:
    """The baseline: the same loop and framing, a body computed once (the ledger scrape bench's server)."""
    async with _server(_static_server(body)) as port:
        yield port


def _consumer(partitions: int) -> Serving:
    lag = {(group, spec.name, p): 100 + p for group in ("kp-metrics", "kp-ledger") for spec in CATALOG
           for p in range(partitions)}  # fmt: skip
    return lambda: _server(serve_consumer(new_registry(Aggregator, lambda: lag), port=0))


def _ledger(partitions: int) -> Serving:
    return lambda: _server(serve_ledger(busy_metrics(partitions), host="127.0.0.1", port=0))


def _webhooks() -> Serving:
    metrics = WebhookMetrics()
    for n, seconds in enumerate((*WEBHOOK_ATTEMPT_BUCKETS_S, 30.0) * 20):
        metrics.attempted(result=ATTEMPT_RESULTS[n % len(ATTEMPT_RESULTS)], seconds=seconds,
                          delivery_status=("pending", "delivered", "failed")[n % 3])  # fmt: skip
    metrics.set_backlog(pending=1_234, oldest_due_age_s=4.2)
    return lambda: _server(serve_webhooks(metrics, host="127.0.0.1", port=0))


@contextlib.asynccontextmanager
async def _api() -> AsyncIterator[int]:
    """The real app under uvicorn on a free port, its request metrics filled for every route template."""
    with tempfile.TemporaryDirectory() as state:
        app = create_app(Settings(state_dir=Path(state)))
        metrics = app.state.metrics
        for path, operations in app.openapi()["paths"].items():  # every route template with its methods
            for method in operations:
                for n, status in enumerate(API_STATUSES):
                    metrics.answered(method.upper(), path, status, 0.002 * (n + 1))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + SERVER_START_S
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.05)
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, SERVER_START_S)


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def measure(job: str, serving: Serving, scrapes: int) -> dict[str, object]:
    """One exporter's scrape times, then its static baseline's."""
    async with serving() as port:
        exporter_ms, body = await _times(port, scrapes)
    async with _static(body) as port:
        baseline_ms, _ = await _times(port, scrapes)
    p50, baseline_p50 = statistics.median(exporter_ms), statistics.median(baseline_ms)
    return {
        "job": job,
        "bytes": len(body),
        "samples": sum(1 for line in body.splitlines() if line and not line.startswith(b"#")),
        "ms_p50": round(p50, 2),
        "ms_p99": round(_p99(exporter_ms), 2),
        "baseline_ms_p50": round(baseline_p50, 2),
        "ratio_p50": round(p50 / baseline_p50, 1),
        "met": _p99(exporter_ms) <= TARGET_MS,
    }


async def run(scrapes: int, partitions: int) -> list[dict[str, object]]:
    """Every exporter in turn, each with its baseline."""
    exporters: list[tuple[str, Serving]] = [
        ("kpsandbox", _consumer(partitions)),
        ("kpsandbox-ledger", _ledger(partitions)),
        ("kpsandbox-api", _api),
        ("kpsandbox-webhooks", _webhooks()),
    ]
    return [await measure(job, serving, scrapes) for job, serving in exporters]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=300, help="timed scrapes per server (default 300)")
    parser.add_argument("--partitions", type=int, default=12, help="partitions per topic (default 12)")
    args = parser.parse_args()
    rows = asyncio.run(run(args.scrapes, args.partitions))
    print(f"{'job':<20}{'bytes':>9}{'samples':>9}{'p50 ms':>9}{'p99 ms':>9}{'base ms':>9}{'÷ base':>8}  ≤ 50 ms")
    for r in rows:
        print(f"{r['job']:<20}{r['bytes']:>9,}{r['samples']:>9,}{r['ms_p50']:>9}{r['ms_p99']:>9}"
              f"{r['baseline_ms_p50']:>9}{r['ratio_p50']:>8}  {'yes' if r['met'] else 'NO'}")  # fmt: skip
    print(json.dumps({"scrapes": args.scrapes, "partitions": args.partitions, "exporters": rows}))


if __name__ == "__main__":
    main()
