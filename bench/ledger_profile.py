"""Where one ledger process spends its CPU: py-spy samples of `python -m consumers.ledger --until-idle`
draining a pre-loaded stream, grouped into stages, as µs of CPU per payment.

    .venv/bin/python bench/ledger_profile.py [--payments 100000] [--rate 250] [--keep-profile PATH]
                                             [--phases] [--tree PATH] [--account-ids economy|api]

Uses the services of `kpsandbox up`; the stream, the fresh database and topic prefix are those of
`bench/ledger.py` (uniform: no hot account). py-spy samples only the thread holding the GIL, so
each stage's share of the samples is its share of the process's CPU; the table scales the shares
by the process's own user + system time per payment (start-up included). `--phases` instead times
the batch transaction's steps, the garbage collector, the event loop's idle time (in select()) and
the wall time between batches (no transaction open), and reports the CPU spent from the first batch
on. Every run also gives the wall time from the first batch's start to the last one's end
(`settling_wall_us_per_payment`, `settled_per_s`). Prints a table (Markdown) and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import ACCOUNT_IDS, REPO, account_events, clean_up, payment_stream, population, preload
from infra.settings import Settings, load_settings
from schemas.topics import PAYMENT_REQUESTS

PY_SPY: Final = Path(sys.executable).with_name("py-spy")
RUN_WAIT_S_MAX: Final = 900.0

# The ledger process as `python -m consumers.ledger --until-idle` runs it, reporting its CPU (all of
# it, and from the first batch on) as JSON on stderr at exit. With PROFILE_PHASES=1 (`--phases`) it
# also times the batch transaction's steps, its statements and the garbage collector (wall clock,
# summed over the run). Patches module attributes only; nothing else changes.
PROBE: Final = r"""
import atexit, gc, json, os, resource, runpy, sys, time
import asyncpg.connection
from consumers.ledger import batch, consumer, intake, repository, retries
from consumers.ledger.domain import Ledger
spent = {}
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def add(name, started):
    spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
def timed(name, fn, is_async):
    if is_async:
        async def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                add(name, started)
    else:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                add(name, started)
    return wrapper
first = []
settle = batch.settle_batch
if os.environ.get("PROFILE_PHASES"):
    for name in ("lock_offsets", "select_clocks", "select_prior_requests", "lock_pending", "lock_accounts",
                 "write_effects", "upsert_clocks", "insert_outbox", "advance_offsets"):
        if hasattr(repository, name):  # an older tree (--tree) may name its steps differently
            setattr(repository, name, timed("db: " + name, getattr(repository, name), True))
    settle = timed("settle_batch (whole transaction)", settle, True)
    batch.outcome_bytes = timed("cpu: outcome_bytes", batch.outcome_bytes, False)
    Ledger.decide = timed("cpu: decide", Ledger.decide, False)
    intake.read_requests = timed("cpu: read_requests (next batch)", intake.read_requests, False)
    Connection = asyncpg.connection.Connection
    copy_records, execute = Connection.copy_records_to_table, Connection.execute
    async def timed_copy(self, table, **kwargs):
        started = time.perf_counter()
        try:
            return await copy_records(self, table, **kwargs)
        finally:
            add("sql: COPY " + table, started)
    async def timed_execute(self, query, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await execute(self, query, *args, **kwargs)
        finally:
            add("sql: " + " ".join(query.split()[:3]), started)
    Connection.copy_records_to_table, Connection.execute = timed_copy, timed_execute
    gc_started = [0.0]
    def on_gc(phase, info):
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            add(f"gc: generation {info['generation']}", gc_started[0])
            spent["gc: objects collected (count)"] = spent.get("gc: objects collected (count)", 0) + info["collected"]
            spent["gc: collections (count)"] = spent.get("gc: collections (count)", 0) + 1
    gc.callbacks.append(on_gc)
last_commit = [0.0]
async def settle_noting_start(*args, **kwargs):
    if not first:  # start-up (imports, migrations, connecting) is left out of "cpu while settling"
        first.extend((cpu(), time.perf_counter()))
    try:
        return await settle(*args, **kwargs)
    finally:
        last_commit[0] = time.perf_counter()
batch.settle_batch = retries.settle_batch = settle_noting_start
if os.environ.get("PROFILE_GC_DEFAULT"):  # the settler without its collector policy (GC_THRESHOLDS)
    import contextlib
    consumer.collecting_rarely = contextlib.nullcontext
if os.environ.get("PROFILE_PHASES"):  # the event loop's time waiting in select(): nothing to do
    import selectors
    select = selectors.EpollSelector.select
    def timed_select(self, timeout=None):
        started = time.perf_counter()
        try:
            return select(self, timeout)
        finally:
            if first:
                add("loop: idle, waiting in select()", started)
    selectors.EpollSelector.select = timed_select
def report():
    spent["process cpu (user+sys)"] = cpu()
    spent["process cpu while settling (from the first batch)"] = cpu() - (first or [0.0])[0]
    if first:
        wall = spent["wall while settling (the first batch's start to the last one's end)"] = last_commit[0] - first[1]
        if "settle_batch (whole transaction)" in spent:
            spent["wall between batches (no transaction open)"] = wall - spent["settle_batch (whole transaction)"]
    print(json.dumps(spent), file=sys.stderr)
atexit.register(report)
sys.argv = ["consumers.ledger", "--until-idle"]
runpy.run_module("consumers.ledger", run_name="__main__")
"""

# (stage, test on one frame "function (file)"); the deepest frame of the stack that matches a rule
# names the stage, so a pydantic call inside `fingerprint` counts as the fingerprint.
RULES: Final[tuple[tuple[str, str], ...]] = (
    ("read: fingerprint", "fingerprint (consumers/ledger/reading.py)"),
    ("read: parse request JSON", "read_event (consumers/ledger/deadletter.py)"),
    ("read: items, tenant header", "read_requests (consumers/ledger/reading.py)"),
    ("merge + positions", "consumers/ledger/merge.py"),
    ("merge + positions", "consumers/ledger/positions.py"),
    ("decide (domain)", "consumers/ledger/domain.py"),
    ("decide (domain)", "consumers/ledger/clock.py"),
    ("outcome JSON", "consumers/ledger/outcomes.py"),
    ("repository (rows for asyncpg)", "consumers/ledger/repository.py"),
    ("relay: produce outcomes", "consumers/ledger/outbox.py"),
    ("batch: prepare, collect", "consumers/ledger/batch.py"),
    ("batch: prepare, collect", "consumers/ledger/retries.py"),
    ("consumer loop", "consumers/ledger/consumer.py"),
    ("consumer loop", "consumers/ledger/intake.py"),
    ("consumer loop", "consumers/ledger/tally.py"),
    ("aiokafka fetch/decode", "aiokafka/consumer"),
    ("aiokafka fetch/decode", "aiokafka/record"),
    ("aiokafka produce", "aiokafka/producer"),
    ("aiokafka other", "aiokafka/"),
    ("asyncpg (COPY and array encoding, protocol)", "asyncpg/"),
    ("event loop, sockets", "asyncio/"),
    ("event loop, sockets", "uvloop/"),
)


def stage_of(stack: list[str]) -> str:
    """The stage of one sampled stack (root first)."""
    for frame in reversed(stack):
        for stage, needle in RULES:
            if needle in frame:
                return stage
    return "other (start-up, imports, GC outside our frames)"


def read_raw(path: Path) -> Counter[str]:
    """Samples per stage from py-spy's raw (collapsed stack) output."""
    stages: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stages[stage_of(stack.split(";"))] += int(count)
    return stages


def free_port() -> int:
    """A port nobody listens on (the child's /metrics; other ledgers may hold the default)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def profile(config: Settings, *, payments: int, rate: int, output: Path, phases: bool, tree: Path) -> dict:
    """Runs the consumer (under py-spy when `rate`) until it is idle; returns its CPU and wall time."""
    env = dict(os.environ)
    env.update(
        KPSANDBOX_TOPIC_PREFIX=config.topic_prefix,
        KPSANDBOX_DATABASE_URL=config.dsn,
        KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        KPSANDBOX_LEDGER_METRICS_PORT=str(free_port()),
        KPSANDBOX_LEDGER_GROUP=f"kp-ledger-profile-{os.getpid()}",  # no rebalance with other runs' ledgers
        PYTHONPATH=str(tree),
    )
    if phases:
        env["PROFILE_PHASES"] = "1"
    args = [sys.executable, "-c", PROBE]
    if rate:
        spy = [
            str(PY_SPY),
            "record",
            "--gil",
            "--nonblocking",
            "--nolineno",
            "-r",
            str(rate),
            "-f",
            "raw",
            "-o",
            str(output),
        ]
        args = [*spy, "--", *args]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=str(tree), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_WAIT_S_MAX)
    spent = json.loads(stderr.decode().strip().splitlines()[-1])
    if phases:
        for name, seconds in sorted(spent.items()):
            if name.endswith("(count)"):
                print(f"| {name} | {seconds:,} |")
            else:
                print(f"| {name} | {seconds / payments * 1e6:.1f} µs per payment |")
    return {
        "wall_s": time.monotonic() - started,
        "cpu_s": spent["process cpu (user+sys)"],
        "settling_cpu_s": spent["process cpu while settling (from the first batch)"],
        "settling_wall_s": spent.get("wall while settling (the first batch's start to the last one's end)", 0.0),
        "summary": stdout.decode().strip(),
    }


def table(stages: Counter[str], *, cpu_us: float) -> str:
    """Markdown rows: stage, share of the samples, and that share of the measured CPU per payment.

    Samples are taken while the thread holds the GIL, also when the machine's other work keeps it
    off a core, so their count follows wall time on a busy machine: shares, not counts, are kept."""
    total = sum(stages.values())
    rows = ["| stage | share | µs per payment (share × process CPU) |", "|---|---|---|"]
    for stage, samples in stages.most_common():
        rows.append(f"| {stage} | {samples / total:.0%} | {samples / total * cpu_us:.1f} |")
    rows.append(f"| **the process's CPU (user + system, start-up included)** | 100% | **{cpu_us:.1f}** |")
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (0: no py-spy)")
    parser.add_argument("--keep-profile", type=Path, help="keep py-spy's raw output here")
    parser.add_argument("--phases", action="store_true", help="time the transaction's steps (no py-spy)")
    parser.add_argument("--tree", type=Path, default=REPO, help="run the ledger of this checkout (a git worktree)")
    parser.add_argument("--account-ids", choices=sorted(ACCOUNT_IDS), default="economy", help="as bench/ledger.py's")
    args = parser.parse_args()
    base = load_settings()
    employer, citizens, merchants = population(args.account_ids)
    config = await preload(
        base,
        "profile",
        account_events(employer, citizens, merchants),
        payment_stream(args.payments, hot_share=0.0, ids=args.account_ids),
    )
    output = args.keep_profile or Path(f"/tmp/ledger-profile-{os.getpid()}.txt")
    try:
        rate = 0 if args.phases else args.rate
        run = await profile(
            config, payments=args.payments, rate=rate, output=output, phases=args.phases, tree=args.tree.resolve()
        )
    finally:
        await clean_up(base)
    if args.rate and not args.phases:
        stages = read_raw(output)
        if args.keep_profile is None:
            output.unlink()
        print(table(stages, cpu_us=run["cpu_s"] / args.payments * 1e6))
    result = {
        "payments": args.payments,
        "tree": str(args.tree),
        "topic": config.topic(PAYMENT_REQUESTS),
        "wall_s": round(run["wall_s"], 1),
        "process_cpu_us_per_payment": round(run["cpu_s"] / args.payments * 1e6, 1),
        "settling_cpu_us_per_payment": round(run["settling_cpu_s"] / args.payments * 1e6, 1),
        "settling_wall_us_per_payment": round(run["settling_wall_s"] / args.payments * 1e6, 1),
        "settled_per_s": round(args.payments / run["settling_wall_s"]) if run["settling_wall_s"] else None,
        "load_average": os.getloadavg(),
        "consumer": run["summary"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
