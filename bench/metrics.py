"""Metrics consumer speed and memory: aggregation events/s, RSS after N events, /metrics scrape time.

    .venv/bin/python bench/metrics.py [--events 1000000] [--citizens 10000] [--scrapes 30]

Feeds the pure aggregator in-process with the simulation's wire bytes, exactly as the Kafka loop
does (`apply_record`: parse, then aggregate), plus one synthetic `payment.settled` outcome per
request (so outcomes, dedupe and latency bookkeeping are exercised without a ledger). Then scrapes
the exporter over HTTP on a free port; every label combination is always exported, so the scrape
covers the full catalogue. Prints one JSON object. Runs on one core (one Python thread).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import new_registry, serve
from consumers.metrics.reading import apply_record
from consumers.metrics.snapshot import dump_state
from infra.local.procs import rss_bytes
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from schemas.payments import outcome_event_id
from schemas.topics import PAYMENT_OUTCOMES

SCRAPE_TIMEOUT_S = 5.0
OUTCOME_TYPES = ("payment.requested", "cash.in", "cash.out")
# The ledger's fingerprint of a request's fields; one per request id is all the bench needs.
FINGERPRINT = bytes(16)


def _outcome(doc: dict) -> bytes:
    """A settled outcome answering one request document (what the ledger would publish)."""
    request = UUID(doc["event_id"])
    cash_in = doc["event_type"] == "cash.in"
    payer = doc.get("payer_account_id") or (doc["agent_account_id"] if cash_in else doc["customer_account_id"])
    payee = doc.get("payee_account_id") or (doc["customer_account_id"] if cash_in else doc["agent_account_id"])
    return json.dumps({
        "event_type": "payment.settled", "schema_version": 2,
        "event_id": str(outcome_event_id(request, "created", FINGERPRINT)),
        "occurred_at": doc["occurred_at"], "producer": "bench", "correlation_id": doc["correlation_id"],
        "request_event_id": str(request), "request_type": doc["event_type"],
        "request_occurred_at": doc["occurred_at"], "payer_account_id": payer, "payee_account_id": payee,
        "amount": doc["amount"], "currency": "PKR", "kind": doc.get("kind"), "rail": doc.get("rail"),
        "result": "created", "status": "posted", "transfer_id": str(request),
    }).encode()  # fmt: skip


def feed(agg: Aggregator, events_max: int, citizens: int) -> tuple[int, float]:
    """Applies up to events_max records (requests also yield an outcome); returns (records, seconds)."""
    sim = Simulation(SimulationConfig(seed=5, days=36_000, citizens=citizens, merchants=max(1, citizens // 10),
                                      scenario=load_scenario("digital-kp")))  # fmt: skip
    ts, applied = sim.timestamps, 0
    started = time.perf_counter()
    for clock_ms, rec in enumerate(sim.records()):  # a fake Kafka timestamp: 1 ms per record
        raw = rec.json(ts).encode()
        agg.count_event(rec.topic.name, apply_record(agg, rec.topic, raw, clock_ms))
        applied += 1
        event_type = raw[raw.find(b'"event_type":"') + 14 :].split(b'"', 1)[0].decode()
        if event_type in OUTCOME_TYPES:
            outcome = _outcome(json.loads(raw))
            agg.count_event(PAYMENT_OUTCOMES.name, apply_record(agg, PAYMENT_OUTCOMES, outcome, clock_ms + 3))
            applied += 1
        if applied >= events_max:
            break
    return applied, time.perf_counter() - started


def _get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_S) as response:
        return response.read()


async def scrape_times(agg: Aggregator, scrapes: int) -> tuple[list[float], int, int]:
    """Wall time of each HTTP scrape (ms), the body size and the number of samples."""
    lag = {("kp-metrics", "kp.cash.v1", p): 0 for p in range(3)}
    server = await serve(new_registry(lambda: agg, lambda: lag), 0)
    port = server.sockets[0].getsockname()[1]
    times, body = [], b""
    try:
        for _ in range(scrapes):
            started = time.perf_counter()
            body = await asyncio.to_thread(_get, port)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        server.close()
        await server.wait_closed()
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return times, len(body), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--citizens", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    rss_before = rss_bytes(os.getpid())
    agg = Aggregator()
    applied, seconds = feed(agg, args.events, args.citizens)
    rss_after = rss_bytes(os.getpid())
    times, size, samples = asyncio.run(scrape_times(agg, args.scrapes))
    started = time.perf_counter()
    blob = dump_state(agg)
    snapshot_s = time.perf_counter() - started
    print(json.dumps({
        "events": applied,
        "citizens": args.citizens,
        "aggregate_events_per_s": round(applied / seconds),
        "rss_mib_before": round(rss_before / 2**20, 1),
        "rss_mib_after": round(rss_after / 2**20, 1),
        "scrape_ms_median": round(statistics.median(times), 2),
        "scrape_ms_max": round(max(times), 2),
        "scrape_bytes": size,
        "scrape_samples": samples,
        "snapshot_bytes": len(blob),
        "snapshot_s": round(snapshot_s, 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
