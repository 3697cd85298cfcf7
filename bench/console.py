"""How long each operator console page takes to draw every graph in headless Chromium, with a day of
data, against a raw baseline page load in the same run.

    .venv/bin/python bench/console.py [--hours 24] [--step-s 5] [--districts 12] [--rounds 3]

1. Writes a day of synthetic samples (OpenMetrics) for every series the pages draw — the four
   exporters' families of schemas/metrics.py with plausible label sets (12 districts, 6 partitions,
   5 API routes, …) and the recording rules' series (written as samples: a backfilled TSDB has no
   rule evaluations for the past) — at the local Prometheus's scrape interval (5 s).
2. `promtool tsdb create-blocks-from openmetrics` turns them into blocks in a throwaway data folder;
   Prometheus (Debian's) starts on it, on a free port, with the console flags.
3. Headless Chromium (tests/browser.py) loads each page `--rounds` times, at the default 1 h range and
   at a 1 d range (`#pctc{"duration":86400}`), and records navigation start → load event, and →
   the last graph drawn (the console library stamps each graph, see kpsandbox.lib). The baseline is
   Prometheus's own classic /graph page (its load event) in the same browser and run.
4. Profile of the 1 d load (the last round): when the page's HTML arrived (the server-side table
   queries), each graph query's time in Prometheus and in the browser's queue (Resource Timing),
   the drawing time after the last answer, and each expression timed alone (sequentially, same
   range and step) — so a slow page says whether Prometheus or the browser is the cost.
Prints one JSON object; target: every page's graphs drawn ≤ 2,000 ms after navigation start.
`--keep DIR` backfills into DIR once and reuses it on later runs (the backfill takes minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.local.prometheus import console_flags, prometheus_version
from schemas.metrics import (
    API_REQUEST_BUCKETS_S,
    LEDGER_BATCH_BUCKETS_S,
    SETTLEMENT_LATENCY_BUCKETS_S,
    WEBHOOK_ATTEMPT_BUCKETS_S,
)
from tests.browser import Chromium
from tests.console_pages import PAGES, graphs

TARGET_MS: Final = 2_000.0
START_TIMEOUT_S: Final = 60.0
DAY_RANGE_HASH: Final = '#pctc{"duration":86400,"endTime":0}'
GROUP: Final = "kp-ledger"
PARTITIONS: Final = 6
ROUTES: Final = ("/v1/payments", "/v1/payments/{payment_id}", "/v1/accounts", "/v1/test_helpers/top_ups", "other")
CATEGORIES: Final = ("grocery", "pharmacy", "fuel", "restaurant", "clothing", "transport")
PROFILE_SLOWEST: Final = 4  # queries listed per page in the profile
# The page's query_range requests and its navigation timings, in ms after navigation start.
TIMINGS_JS: Final = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const queries = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/query_range'))
    .map(e => ({url: e.name, start: e.startTime, sent: e.requestStart, first_byte: e.responseStart,
                end: e.responseEnd}));
  return {html_ms: nav.responseEnd, queries: queries};
})()"""
LEDGER_RESULTS: Final = ("created", "exists", "account_not_found", "exceeds_credits", "payee_limit_exceeded", "other")

Labels = dict[str, str]


def _fmt(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


class Writer:
    """Streams series (name, labels, value per step) as OpenMetrics, one family at a time."""

    def __init__(self, out: TextIO, start_s: int, steps: int, step_s: int, seed: int) -> None:
        self.out, self.start_s, self.steps, self.step_s = out, start_s, steps, step_s
        self.random = random.Random(seed)
        self.series = 0
        self._family: str | None = None

    def family(self, name: str) -> None:
        """Starts a family (all its samples must be contiguous)."""
        self._family = name
        self.out.write(f"# TYPE {name} unknown\n")

    def gauge(self, name: str, labels: Labels, level: float, wobble: float = 0.05) -> None:
        """A value wandering around `level` (a daily wave plus noise)."""
        self._write(
            name,
            labels,
            (
                level * (1 + wobble * math.sin(i / 720) + wobble * (self.random.random() - 0.5))
                for i in range(self.steps)
            ),
        )

    def counter(self, name: str, labels: Labels, per_s: float) -> None:
        """A counter increasing by about per_s a second."""

        def values() -> Iterator[float]:
            total = 0.0
            for _ in range(self.steps):
                total += per_s * self.step_s * (0.5 + self.random.random())
                yield round(total)

        self._write(name, labels, values())

    def _write(self, name: str, labels: Labels, values: Iterator[float]) -> None:
        assert self._family is not None
        head = f"{name}{_fmt(labels)} "
        lines = (f"{head}{v:.6g} {self.start_s + i * self.step_s}\n" for i, v in enumerate(values))
        self.out.writelines(lines)
        self.series += 1

    def histogram(self, name: str, labels: Labels, buckets: tuple[float, ...], per_s: float, typical_s: float) -> None:
        """Cumulative buckets of observations around typical_s, at per_s a second."""
        for le in (*buckets, math.inf):
            share = 1 / (1 + math.exp(-(math.log(le) - math.log(typical_s)) * 3)) if le != math.inf else 1.0
            self.counter(f"{name}_bucket", {**labels, "le": "+Inf" if le == math.inf else f"{le:g}"}, per_s * share)


def write_day(out: TextIO, *, start_s: int, steps: int, step_s: int, districts: int) -> int:
    """Every series the console draws; returns the series count."""
    w = Writer(out, start_s, steps, step_s, seed=7)
    names = [f"district_{i:02d}" for i in range(districts)]
    w.family("up")
    for job, port in (
        ("kpsandbox", 9464),
        ("kpsandbox-ledger", 9465),
        ("kpsandbox-api", 8080),
        ("kpsandbox-webhooks", 9466),
    ):
        w.gauge("up", {"job": job, "instance": f"127.0.0.1:{port}"}, 1.0, wobble=0)
    m = {"job": "kpsandbox", "instance": "127.0.0.1:9464"}
    w.family("kpsandbox_payments_total")
    for d in names:
        for rail, outcome in (("wallet", "settled"), ("wallet", "rejected"), ("bank", "settled"), ("bank", "rejected")):
            w.counter(
                "kpsandbox_payments_total",
                {**m, "instrument": "digital", "rail": rail, "district": d, "outcome": outcome},
                2.0 if outcome == "settled" else 0.1,
            )
        w.counter(
            "kpsandbox_payments_total",
            {**m, "instrument": "cash", "rail": "cash", "district": d, "outcome": "cash"},
            2.5,
        )
    w.family("kpsandbox:payments:rate1m")
    for instrument, outcome in (("digital", "settled"), ("digital", "rejected"), ("cash", "cash")):
        w.gauge("kpsandbox:payments:rate1m", {"instrument": instrument, "outcome": outcome}, 20.0)
    w.family("kpsandbox:payments_rejected:ratio_rate5m")
    w.gauge("kpsandbox:payments_rejected:ratio_rate5m", {}, 0.05)
    w.family("kpsandbox_settlement_latency_seconds_bucket")
    w.histogram("kpsandbox_settlement_latency_seconds", m, SETTLEMENT_LATENCY_BUCKETS_S, 40.0, 0.08)
    for quantile, level in (("p95", 0.2), ("p50", 0.08)):
        w.family(f"kpsandbox:settlement_latency_seconds:{quantile}_5m")
        w.gauge(f"kpsandbox:settlement_latency_seconds:{quantile}_5m", {}, level)
    w.family("kpsandbox_consumer_lag_messages")
    for group in ("kp-metrics", GROUP):
        for p in range(PARTITIONS):
            w.gauge(
                "kpsandbox_consumer_lag_messages",
                {**m, "group": group, "topic": "payments.requested", "partition": str(p)},
                30.0,
                wobble=0.8,
            )
    w.family("kpsandbox:consumer_lag_messages:sum_by_group")
    for group in ("kp-metrics", GROUP):
        w.gauge("kpsandbox:consumer_lag_messages:sum_by_group", {"group": group}, 180.0, wobble=0.8)
    w.family("kpsandbox_dead_letter_total")
    for reason in ("unreadable", "schema_mismatch"):
        w.counter("kpsandbox_dead_letter_total", {**m, "reason": reason}, 0.001)
    w.family("kpsandbox_digital_share_ratio")
    for basis in ("count", "value"):
        for d in names:
            w.gauge("kpsandbox_digital_share_ratio", {**m, "basis": basis, "district": d}, 0.45)
    w.family("kpsandbox:digital_share:ratio")
    for basis in ("count", "value"):
        w.gauge("kpsandbox:digital_share:ratio", {"basis": basis}, 0.45)
    for family in (
        "kpsandbox_financial_inclusion_ratio",
        "kpsandbox_adults_with_account",
        "kpsandbox_active_digital_users",
        "kpsandbox_cash_out_leakage_ratio",
    ):
        w.family(family)
        for d in names:
            if family == "kpsandbox_cash_out_leakage_ratio":
                w.gauge(family, {**m, "district": d}, 0.3)
                continue
            for gender in ("female", "male"):
                w.gauge(family, {**m, "district": d, "gender": gender}, 0.5 if family.endswith("ratio") else 900.0)
    w.family("kpsandbox:financial_inclusion:ratio_by_gender")
    for gender in ("female", "male"):
        w.gauge("kpsandbox:financial_inclusion:ratio_by_gender", {"gender": gender}, 0.5)
    w.family("kpsandbox:active_digital_users:sum_by_gender")
    for gender in ("female", "male"):
        w.gauge("kpsandbox:active_digital_users:sum_by_gender", {"gender": gender}, 9000.0)
    w.family("kpsandbox_merchant_digital_acceptance_ratio")
    for category in CATEGORIES:
        w.gauge("kpsandbox_merchant_digital_acceptance_ratio", {**m, "category": category}, 0.6)
    w.family("kpsandbox_simulated_time_seconds")
    w.gauge("kpsandbox_simulated_time_seconds", m, 1.77e9, wobble=0.001)
    _ledger(w)
    _api_and_webhooks(w)
    out.write("# EOF\n")
    return w.series


def _ledger(w: Writer) -> None:
    lg = {"job": "kpsandbox-ledger", "instance": "127.0.0.1:9465", "group": GROUP}
    for name, per_s in (
        ("kpsandbox_ledger_batches_total", 5.0),
        ("kpsandbox_ledger_transfers_total", 40.0),
        ("kpsandbox_ledger_fenced_batches_total", 0.0),
        ("kpsandbox_ledger_expired_transfers_total", 0.01),
    ):
        w.family(name)
        w.counter(name, lg, per_s)
    w.family("kpsandbox_ledger_requests_total")
    for result in LEDGER_RESULTS:
        w.counter("kpsandbox_ledger_requests_total", {**lg, "result": result}, 40.0 if result == "created" else 0.5)
    w.family("kpsandbox:ledger_requests:rate5m_by_result")
    for result in LEDGER_RESULTS:
        w.gauge("kpsandbox:ledger_requests:rate5m_by_result", {"result": result}, 40.0 if result == "created" else 0.5)
    w.family("kpsandbox_ledger_retries_total")
    for kind in ("db_unavailable", "kafka_unavailable", "batch_refused", "relay", "assignment", "other"):
        w.counter("kpsandbox_ledger_retries_total", {**lg, "kind": kind}, 0.0)
    w.family("kpsandbox_ledger_dead_letters_total")
    for reason in ("unreadable", "schema_mismatch", "other"):
        w.counter("kpsandbox_ledger_dead_letters_total", {**lg, "reason": reason}, 0.001)
    w.family("kpsandbox_ledger_batch_seconds_bucket")
    w.histogram("kpsandbox_ledger_batch_seconds", lg, LEDGER_BATCH_BUCKETS_S, 5.0, 0.05)
    for quantile, level in (("p95", 0.12), ("p50", 0.05)):
        w.family(f"kpsandbox:ledger_batch_seconds:{quantile}_5m_by_group")
        w.gauge(f"kpsandbox:ledger_batch_seconds:{quantile}_5m_by_group", {"group": GROUP}, level)
    for name, level in (
        ("kpsandbox_ledger_outbox_rows", 20.0),
        ("kpsandbox_ledger_outbox_oldest_age_seconds", 0.3),
        ("kpsandbox_ledger_assigned_partitions", PARTITIONS),
        ("kpsandbox_ledger_last_progress_timestamp_seconds", time.time()),
    ):
        w.family(name)
        w.gauge(name, lg, level, wobble=0 if "partitions" in name or "timestamp" in name else 0.5)
    for name, level in (("kpsandbox_ledger_lag_messages", 30.0), ("kpsandbox_ledger_clock_seconds", 1.77e9)):
        w.family(name)
        for p in range(PARTITIONS):
            w.gauge(name, {**lg, "partition": str(p)}, level, wobble=0.5 if "lag" in name else 0.001)


def _api_and_webhooks(w: Writer) -> None:
    api = {"job": "kpsandbox-api", "instance": "127.0.0.1:8080"}
    w.family("kpsandbox_api_requests_total")
    for route in ROUTES:
        method = "GET" if "{" in route or route == "/v1/accounts" else "POST"
        for status, per_s in (("200" if method == "GET" else "202", 5.0), ("404", 0.2), ("422", 0.2), ("500", 0.01)):
            w.counter(
                "kpsandbox_api_requests_total", {**api, "method": method, "route": route, "status": status}, per_s
            )
    w.family("kpsandbox:api_requests:rate1m_by_route_status")
    for route in ROUTES:
        method = "GET" if "{" in route or route == "/v1/accounts" else "POST"
        for status, per_s in (("200" if method == "GET" else "202", 5.0), ("404", 0.2), ("422", 0.2), ("500", 0.01)):
            labels = {"method": method, "route": route, "status": status}
            w.gauge("kpsandbox:api_requests:rate1m_by_route_status", labels, per_s)
    for name, level in (
        ("kpsandbox:api_requests_5xx:ratio_rate5m", 0.002),
        ("kpsandbox:api_requests_4xx:ratio_rate5m", 0.07),
        ("kpsandbox:api_request_duration_seconds:p50_5m", 0.01),
        ("kpsandbox:api_request_duration_seconds:p95_5m", 0.05),
        ("kpsandbox:api_request_duration_seconds:p99_5m", 0.2),
    ):
        w.family(name)
        w.gauge(name, {}, level)
    w.family("kpsandbox_api_request_duration_seconds_bucket")
    for route in ROUTES:
        method = "GET" if "{" in route or route == "/v1/accounts" else "POST"
        w.histogram(
            "kpsandbox_api_request_duration_seconds",
            {**api, "method": method, "route": route},
            API_REQUEST_BUCKETS_S,
            5.0,
            0.01,
        )
    w.family("kpsandbox_api_requests_in_flight")
    w.gauge("kpsandbox_api_requests_in_flight", api, 3.0, wobble=0.9)
    hooks = {"job": "kpsandbox-webhooks", "instance": "127.0.0.1:9466"}
    w.family("kpsandbox_webhook_attempts_total")
    for result in ("delivered", "http_error", "timeout", "connection_error", "gone"):
        w.counter(
            "kpsandbox_webhook_attempts_total", {**hooks, "result": result}, 3.0 if result == "delivered" else 0.05
        )
    w.family("kpsandbox:webhook_attempts:rate1m_by_result")
    for result in ("delivered", "http_error", "timeout", "connection_error", "gone"):
        w.gauge(
            "kpsandbox:webhook_attempts:rate1m_by_result", {"result": result}, 3.0 if result == "delivered" else 0.05
        )
    for name, level in (
        ("kpsandbox:webhook_attempts_delivered:ratio_rate5m", 0.95),
        ("kpsandbox:webhook_attempt_duration_seconds:p95_5m", 0.08),
    ):
        w.family(name)
        w.gauge(name, {}, level)
    w.family("kpsandbox:webhook_deliveries_finished:increase5m_by_outcome")
    for outcome, level in (("delivered", 900.0), ("failed", 3.0)):
        w.gauge("kpsandbox:webhook_deliveries_finished:increase5m_by_outcome", {"outcome": outcome}, level)
    w.family("kpsandbox_webhook_attempt_duration_seconds_bucket")
    w.histogram("kpsandbox_webhook_attempt_duration_seconds", hooks, WEBHOOK_ATTEMPT_BUCKETS_S, 3.0, 0.03)
    w.family("kpsandbox_webhook_deliveries_finished_total")
    for outcome in ("delivered", "failed"):
        w.counter(
            "kpsandbox_webhook_deliveries_finished_total",
            {**hooks, "outcome": outcome},
            3.0 if outcome == "delivered" else 0.01,
        )
    for name, level in (
        ("kpsandbox_webhook_deliveries_pending", 4.0),
        ("kpsandbox_webhook_oldest_due_age_seconds", 0.5),
    ):
        w.family(name)
        w.gauge(name, hooks, level, wobble=0.9)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def backfill(folder: Path, *, hours: float, step_s: int, districts: int) -> dict[str, float]:
    """Writes the OpenMetrics file and turns it into blocks under folder/data; timings and sizes."""
    steps = int(hours * 3600 / step_s)
    start_s = int(time.time()) - steps * step_s
    source = folder / "day.om.txt"
    began = time.monotonic()
    with source.open("w") as out:
        series = write_day(out, start_s=start_s, steps=steps, step_s=step_s, districts=districts)
    written = time.monotonic()
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(folder / "data")],
        check=True,
        capture_output=True,
    )
    size_mb = source.stat().st_size / 1e6
    source.unlink()
    return {
        "series": series,
        "samples": series * steps,
        "openmetrics_mb": round(size_mb),
        "write_s": round(written - began, 1),
        "promtool_s": round(time.monotonic() - written, 1),
    }


def start_prometheus(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on the backfilled data, a free port, the console flags; waits until it answers."""
    (folder / "prometheus.yml").write_text("global:\n  scrape_interval: 5s\nscrape_configs: []\n")
    port = _free_port()
    argv = [
        "prometheus",
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=15d",
        *console_flags(),
    ]
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while prometheus_version(url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"prometheus did not start: {(folder / 'prometheus.log').read_text()[-2000:]}")
        time.sleep(0.2)
    with urllib.request.urlopen(f"{url}/consoles/index.html", timeout=10) as response:
        assert response.status == 200
    return process, url


def _query_ms(url: str, expr: str, *, start: str, end: str, step: str) -> float:
    """One range query, alone: ms until Prometheus's whole answer has arrived."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    began = time.perf_counter()
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=60) as response:
        response.read()
    return (time.perf_counter() - began) * 1000


def profile(browser: Chromium, url: str, settled_ms: float | None) -> dict[str, object]:
    """Where the time of the page just loaded went (see the module docstring, step 4)."""
    timings = browser._evaluate(TIMINGS_JS)
    queries: list[dict[str, object]] = []
    alone: list[float] = []
    for entry in timings["queries"]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(entry["url"]).query))
        alone.append(_query_ms(url, query["query"], start=query["start"], end=query["end"], step=query["step"]))
        queries.append({"expr": query["query"][:90], "step_s": float(query["step"]),
                        "queued_ms": round(entry["sent"] - entry["start"]),
                        "in_prometheus_ms": round(entry["first_byte"] - entry["sent"]),
                        "alone_ms": round(alone[-1])})  # fmt: skip
    last_answer = max((entry["end"] for entry in timings["queries"]), default=math.nan)
    slowest = [queries[i] for i in sorted(range(len(alone)), key=lambda i: -alone[i])[:PROFILE_SLOWEST]]
    return {
        "html_ms": round(timings["html_ms"]),
        "queries": len(queries),
        "queries_alone_ms_sum": round(sum(alone)),
        "last_answer_ms": round(last_answer),
        "drawing_after_last_answer_ms": round((settled_ms or math.nan) - last_answer),
        "slowest": slowest,
    }


def measure(url: str, rounds: int) -> dict[str, object]:
    """Per page and range: median ms to the load event and to the last graph drawn; baseline too."""
    results: dict[str, object] = {}
    with Chromium() as browser:
        browser.load(f"{url}/classic/graph")  # warm the browser's cache of the shared static files
        baseline = [browser.load(f"{url}/classic/graph").load_ms or math.nan for _ in range(rounds)]
        results["baseline_classic_graph_load_ms"] = round(statistics.median(baseline))
        for page in PAGES:
            for label, suffix in (("1h", ""), ("1d", DAY_RANGE_HASH)):
                loads = [browser.load(f"{url}/consoles/{page}{suffix}") for _ in range(rounds)]
                bad = [p for load in loads for p in load.problems]
                drawn = statistics.median(load.settled_ms or math.nan for load in loads)
                results[f"{page} {label}"] = {
                    "graphs": len(graphs(page)),
                    "load_ms": round(statistics.median(load.load_ms or math.nan for load in loads)),
                    "all_graphs_drawn_ms": round(drawn),
                    "ratio_to_baseline": round(drawn / results["baseline_classic_graph_load_ms"], 2),  # type: ignore[operator]
                    "met": drawn <= TARGET_MS,
                    "problems": sorted(set(bad))[:5],
                }
                if label == "1d":
                    results[f"{page} 1d profile"] = profile(browser, url, loads[-1].settled_ms)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--step-s", type=int, default=5)
    parser.add_argument("--districts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Backfill into this folder once and reuse it (not removed).")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kpsandbox-bench-console-"))
    try:
        if args.keep and (folder / "data").is_dir():
            data: dict[str, float] = {"reused": 1.0}
        else:
            folder.mkdir(parents=True, exist_ok=True)
            data = backfill(folder, hours=args.hours, step_s=args.step_s, districts=args.districts)
        process, url = start_prometheus(folder)
        try:
            results = measure(url, args.rounds)
        finally:
            process.terminate()
            process.wait(30)
        print(json.dumps({"data": data, "target_ms": TARGET_MS, **results}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
