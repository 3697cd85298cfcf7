"""Per-request CPU of the ledger's pure Python path: read → decide → outcome bytes, 4,000 payments.

    .venv/bin/python bench/ledger_hotpath.py [TREE ...]

Each TREE is a checkout of this repository (default: this one); with two or more, the first is
the baseline (e.g. a `git worktree` of an older commit) and the others are printed as ratios
against it, measured in the same run, alternating. No services needed. Best of 15 rounds per
measurement, so background load matters less.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PAYMENTS = 4_000
ROUNDS = 15
ALTERNATIONS = 2

# Runs inside one tree (its own imports), prints microseconds per request.
PROBE = r"""
import inspect, random, sys, time, uuid
from collections import namedtuple
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[1])
from consumers.ledger import outcomes
from consumers.ledger.domain import Ledger
try:
    from consumers.ledger.records import Account
except ImportError:  # a tree from before records.py was split out of domain.py
    from consumers.ledger.domain import Account
from consumers.ledger.reading import read_requests
from schemas.events import dump_event
from schemas.payments import PaymentRequested
payments, rounds = int(sys.argv[2]), int(sys.argv[3])
Rec = namedtuple("Rec", "offset key value headers timestamp")
rng = random.Random(1)
payers = [f"acc_{i:016x}" for i in range(2000)]
merchant = "acc_ffffffffffffffff"
start = datetime(2026, 1, 1, tzinfo=UTC)
msgs = []
for i in range(payments):
    e = PaymentRequested(event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        occurred_at=start + timedelta(seconds=i), producer="bench",
        correlation_id=uuid.UUID(int=rng.getrandbits(128), version=4), kind="p2m_static_qr", rail="raast",
        payer_account_id=payers[i % 2000], payee_account_id=merchant, amount=1000)
    msgs.append(Rec(i, e.payer_account_id.encode(), dump_event(e), (), 0))
kw = {"now": start} if "now" in inspect.signature(Ledger.__init__).parameters else {}
best = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    items, _ = read_requests(0, msgs, datetime.min.replace(tzinfo=UTC))
    accounts = {p: Account(p, 0, 0, 0, 0, 10**12) for p in payers}
    accounts[merchant] = Account(merchant)
    ledger = Ledger(accounts=accounts, pending={}, prior={}, clocks={}, **kw)
    out = [outcomes.outcome_bytes(ledger.decide(it.payload)) for it in items]
    best = min(best, time.perf_counter() - t)
print(best / payments * 1e6)
"""


def measure(tree: Path) -> float:
    """Microseconds per request in `tree`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tree), str(PAYMENTS), str(ROUNDS)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def main() -> None:
    """Measures every tree ALTERNATIONS times, alternating; prints µs/request and ratios to the first."""
    trees = [Path(t).resolve() for t in sys.argv[1:]] or [Path(__file__).resolve().parents[1]]
    best = {tree: float("inf") for tree in trees}
    for _ in range(ALTERNATIONS):
        for tree in trees:
            best[tree] = min(best[tree], measure(tree))
    baseline = best[trees[0]]
    for tree in trees:
        print(f"{tree}: {best[tree]:.3f} µs per request, {best[tree] / baseline:.3f} × {trees[0].name}")


if __name__ == "__main__":
    main()
