"""The metrics state as bytes and back: zlib-compressed JSON, versioned.

Saved in PostgreSQL in one row with the offsets it covers, so after a restart the consumer
resumes from exactly the state those offsets produced. The latency bookkeeping (request
timestamps waiting for an outcome) is not saved: after a restart, a request read before it
simply contributes no latency observation (documented in docs/metrics.md).
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from typing import Any, Final

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.window import day_of

SNAPSHOT_VERSION: Final = 1


def dump_state(agg: Aggregator) -> bytes:
    """The state as compact compressed bytes."""
    document: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "accounts": [[key, *value] for key, value in agg.accounts.items()],
        "holders": [[key, *value] for key, value in agg.holders.items()],
        "unbanked": [[token, at, d] for token, (at, d) in agg.unbanked.items()],
        "banked_count": [[d, g, n] for (d, g), n in agg.banked_count.items()],
        "unbanked_count": list(agg.unbanked_count.items()),
        "payments": [[*key, *value] for key, value in agg.payments.items()],
        "flows": [[name, d, v] for (name, d), v in agg.flows.items()],
        "window": agg.window.to_json(),
        "last_active": list(agg.last_active.items()),
        "active_by_day": [[day, d, g, n] for day, b in agg.active_by_day.items() for (d, g), n in b.items()],
        "dead_letters": agg.dead_letters,
        "events": [[t, r, n] for (t, r), n in agg.events.items()],
        "latency_buckets": agg.latency_buckets,
        "latency_sum_s": agg.latency_sum_s,
        "now_s": agg.now_s,
        "seen": list(agg.seen_order),
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), level=1)


def load_state(blob: bytes) -> Aggregator:
    """An aggregator restored from dump_state's bytes; ValueError on an unknown version."""
    doc = json.loads(zlib.decompress(blob))
    if doc.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"metrics snapshot version {doc.get('version')} is not {SNAPSHOT_VERSION}")
    agg = Aggregator()
    agg.accounts = {row[0]: tuple(row[1:]) for row in doc["accounts"]}  # type: ignore[misc]
    agg.holders = {row[0]: (row[1], row[2]) for row in doc["holders"]}
    agg.unbanked = {token: (at, d) for token, at, d in doc["unbanked"]}
    agg.banked_count = {(d, g): n for d, g, n in doc["banked_count"]}
    agg.unbanked_count = {int(d): n for d, n in doc["unbanked_count"]}
    agg.payments = {(i, r, d, o): [c, v] for i, r, d, o, c, v in doc["payments"]}
    agg.flows = {(name, d): v for name, d, v in doc["flows"]}
    agg.window.load_json(doc["window"])
    agg.last_active = dict(doc["last_active"])
    for day, d, g, n in doc["active_by_day"]:
        agg.active_by_day.setdefault(day, {})[(d, g)] = n
    agg.dead_letters = dict(doc["dead_letters"])
    agg.events = {(t, r): n for t, r, n in doc["events"]}
    agg.latency_buckets = list(doc["latency_buckets"])
    agg.latency_sum_s = doc["latency_sum_s"]
    agg.now_s = doc["now_s"]
    agg.day_now = day_of(agg.now_s)
    agg.seen_order = deque(doc["seen"])
    agg.seen = set(agg.seen_order)
    return agg
