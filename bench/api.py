"""API benchmark (issue 9, "Speed"): the API's maximum payments/s against the ledger's settled/s, POST →
final-state latency at half that load, and authenticated GET /v1/payments/{id} against a bare FastAPI app.

    .venv/bin/python bench/api.py [--duration 10] [--concurrency 32] [--payers 1000]
                                  [--ledger-payments 100000] [--quick] [--keep]

Uses the services of `kpsandbox up` (or KPSANDBOX_* settings); every run gets a new database and topic
prefix (bench/ledger.py's `fresh`, dropped afterwards unless --keep). The API (`python -m producers.api`),
the ledger (`python -m consumers.ledger`) and the views consumer (`python -m consumers.views`) run as
their own processes on free ports, as `kpsandbox serve` runs them. Figures, all from this one run:

(a) API max: CONCURRENCY clients in a closed loop POST /v1/payments (p2p among --payers pre-funded
    wallets) for --duration s; accepted (202) payments/s. The ledger's settled/s is bench/ledger.py's
    `throughput_run` (a pre-loaded stream, settled/s between 5% and 95%), run after the API has stopped.
(b) At half of (a)'s rate, paced open-loop (each request starts at its scheduled time, whatever the
    others do), time from the scheduled POST to GET /v1/payments/{id}?wait answering a final status;
    also to the views consumer's `updated_at` (what the ledger + views take, without ?wait's polling);
    and the views consumer's share of issue 10's outcome → webhook delivery: the ledger's outcome record
    (its Kafka timestamp, stamped when the relay sends it) → the payment's webhook event recorded
    (`api_events.created_at`, in the views consumer's transaction). bench/webhooks.py measures the rest,
    event recorded → delivery received, at half the dispatcher's maximum.
(c) GET /v1/payments/{id} with a tenant key, closed loop, against the same route on a bare FastAPI app
    returning a constant (`bench/api.py --bare-server PORT`, served by uvicorn exactly as the API is).

The client is a minimal HTTP/1.1 keep-alive client (below), so the load generator costs little of the
two cores next to the servers it measures. Prints a table (figure, measured, target, met) and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import TopicPartition

from bench.ledger import clean_up, fresh, rss_mib, throughput_run
from consumers.views.consumer import REQUEST_EVENT_ID
from infra import kafka_clients
from infra.kafka_admin import end_offsets
from infra.settings import Settings, load_settings, settings_env, with_overrides
from producers.api.tenants import Tenants
from schemas.api.payments import SETTLED_PAYMENT_STATUSES
from schemas.topics import PAYMENT_OUTCOMES

REPO: Final = Path(__file__).resolve().parents[1]
HOST: Final = "127.0.0.1"
TOP_UP_PAISA: Final = 5_000_000  # 50,000 PKR: far above what a payer spends here
# level_2 wallets have no SBP limit: in a level_1 wallet this top-up alone fills the day's credit window,
# and every payment to it would fail `payee_limit_exceeded` (the bench measures payments that succeed).
WALLET_TIER: Final = "level_2"
PAYMENT_PAISA: Final = 100
SETUP_CONCURRENCY: Final = 16
START_TIMEOUT_S: Final = 60.0
REQUEST_TIMEOUT_S: Final = 15.0
SETTLE_TIMEOUT_S: Final = 180.0
STOP_TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.25
WAIT_PARAM_S: Final = 10  # ?wait=10: the most the API allows
OPEN_LOOP_IN_FLIGHT_MAX: Final = 2_000  # past this the API is not keeping up: requests are counted as dropped
CONNECTIONS_MAX: Final = 512
IDLE_REUSE_S_MAX: Final = 4.0  # below uvicorn's timeout_keep_alive (5 s): older idle connections are not reused
TARGETS: Final = {"api_vs_ledger": 0.5, "p99_ms": 250.0, "get_vs_bare": 0.3}
BARE_BODY: Final = {"id": "pay_" + "0" * 32, "status": "succeeded", "amount": PAYMENT_PAISA}


# --- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------------------


class HttpError(Exception):
    """The server closed the connection or answered something this client does not read."""


class Connection:
    """One keep-alive connection; a request is one write and a Content-Length-framed read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        """False once the server has closed it, or when it has been idle long enough that the server may
        be closing it right now (uvicorn closes keep-alive connections idle for 5 s)."""
        return not self.reader.at_eof() and time.monotonic() - self.idle_since < IDLE_REUSE_S_MAX

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                raise HttpError("chunked responses are not read by this client")
        return status, await self.reader.readexactly(length) if length else b""


class Client:
    """A pool of keep-alive connections to one server, opened as needed (at most CONNECTIONS_MAX)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[Connection] = []
        self.opened = 0

    async def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """One request; (status, body). A broken connection is dropped, not reused."""
        body = json.dumps(payload).encode() if payload is not None else b""
        kind = "Content-Type: application/json\r\n" if payload is not None else ""
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{self.headers}{kind}Content-Length: {len(body)}\r\n\r\n"
        connection = await self._take()
        try:
            answer = await asyncio.wait_for(connection.request(head.encode(), body), REQUEST_TIMEOUT_S)
        except BaseException:
            self._drop(connection)
            raise
        connection.idle_since = time.monotonic()
        self.idle.append(connection)
        return answer

    async def _take(self) -> Connection:
        """The most recently used idle connection the server has not closed, or a new one."""
        while self.idle:  # bounded: each pass removes one
            connection = self.idle.pop()
            if connection.reusable():
                return connection
            self._drop(connection)
        return await self._open()

    def _drop(self, connection: Connection) -> None:
        connection.writer.close()
        self.opened -= 1

    async def _open(self) -> Connection:
        if self.opened >= CONNECTIONS_MAX:
            raise HttpError(f"more than {CONNECTIONS_MAX} connections in use")
        self.opened += 1
        try:
            return Connection(*await asyncio.open_connection(HOST, self.port))
        except BaseException:
            self.opened -= 1
            raise

    def close(self) -> None:
        for connection in self.idle:
            connection.writer.close()
        self.idle.clear()


async def closed_loop(call: Callable[[int], Awaitable[bool]], *, concurrency: int, duration_s: float) -> dict:
    """`concurrency` workers call `call(n)` back to back for duration_s; ok and other answers per second."""
    counts = {"ok": 0, "other": 0}
    sequence = iter(range(10**12))  # the loop's bound is the deadline; n numbers the calls
    deadline = time.monotonic() + duration_s

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                counts["ok" if await call(next(sequence)) else "other"] += 1
            except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError):
                counts["other"] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {"ok_per_s": round(counts["ok"] / elapsed, 1), "others": counts["other"], "seconds": round(elapsed, 2)}


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max of milliseconds."""
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 1)}


# --- processes -------------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ms_per_call(cpu_seconds: float, rate: dict) -> float:
    """CPU milliseconds the server spent per answered call: unlike calls/s, this hardly depends on what
    else runs on the machine (a busy machine lowers calls/s, not the work per call)."""
    calls = rate["ok_per_s"] * rate["seconds"]
    return round(cpu_seconds * 1000 / calls, 3) if calls else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Processes:
    """The processes this run started, stopped (SIGTERM, bounded wait, SIGKILL) in reverse order."""

    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], config: Settings) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")} | settings_env(config)
        env["PYTHONPATH"] = str(REPO)
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)

    def log_tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]


async def wait_ready(client: Client, path: str, processes: Processes, name: str) -> None:
    """Until GET path answers 200 (bounded); the process's log if it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if processes.running[name].poll() is not None:
            raise SystemExit(f"{name} exited while starting:\n{processes.log_tail(name)}")
        with contextlib.suppress(OSError, HttpError, TimeoutError, asyncio.IncompleteReadError):
            if (await client.call("GET", path))[0] == 200:
                return
        await asyncio.sleep(POLL_S)
    raise SystemExit(f"{name} did not answer {path} within {START_TIMEOUT_S:.0f} s:\n{processes.log_tail(name)}")


async def wait_settled(dsn: str, table: str) -> float:
    """Seconds until no row of `table` is `processing` (bounded by SETTLE_TIMEOUT_S)."""
    connection = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while time.monotonic() - started < SETTLE_TIMEOUT_S:
            if not await connection.fetchval(f"SELECT count(*) FROM {table} WHERE status = 'processing'"):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
    finally:
        await connection.close()
    raise SystemExit(f"{table} still has processing rows after {SETTLE_TIMEOUT_S:.0f} s: is the ledger running?")


# --- the workloads ---------------------------------------------------------------------------------------


async def open_accounts(client: Client, payers: int) -> list[str]:
    """`payers` citizen wallets, each topped up with TOP_UP_PAISA (cash-in at the tenant's agent)."""
    ids: list[str] = []
    numbers = iter(random.Random(9).sample(range(10**7), payers))

    async def open_one(_: int) -> bool:
        msisdn = f"0345{next(numbers):07d}"
        wallet = {
            "kind": "citizen_wallet",
            "msisdn": msisdn,
            "district": "Peshawar",
            "gender": "female",
            "tier": WALLET_TIER,
        }
        status, body = await client.call("POST", "/v1/accounts", wallet)
        if status != 201:
            raise SystemExit(f"opening an account answered {status}: {body[:300]!r}")
        account = json.loads(body)["id"]
        ids.append(account)
        top_up = {"account": account, "amount": TOP_UP_PAISA}
        status, body = await client.call("POST", "/v1/test_helpers/top_ups", top_up)
        if status != 202:
            raise SystemExit(f"a top-up answered {status}: {body[:300]!r}")
        return True

    for start in range(0, payers, SETUP_CONCURRENCY):
        await asyncio.gather(*(open_one(n) for n in range(start, min(payers, start + SETUP_CONCURRENCY))))
    return ids


def payment_body(accounts: list[str], n: int) -> dict[str, Any]:
    """Payer n pays the next payer: every payer in turn, so no account is hot."""
    return {"payer": accounts[n % len(accounts)], "payee": accounts[(n + 1) % len(accounts)], "amount": PAYMENT_PAISA}


async def api_max(client: Client, accounts: list[str], *, concurrency: int, duration_s: float) -> tuple[dict, list]:
    """(a): accepted POST /v1/payments per second, closed loop; and the accepted ids."""
    accepted: list[str] = []

    async def pay(n: int) -> bool:
        status, body = await client.call("POST", "/v1/payments", payment_body(accounts, n))
        if status == 202:
            accepted.append(json.loads(body)["id"])
        return status == 202

    return await closed_loop(pay, concurrency=concurrency, duration_s=duration_s), accepted


async def paced_latency(client: Client, accounts: list[str], *, rate: float, duration_s: float, dsn: str) -> dict:
    """(b): open loop at `rate`/s; scheduled POST → ?wait answers a final status; and → the view's updated_at."""
    count = max(1, int(rate * duration_s))
    to_final_ms: list[float] = []
    sent_wall: dict[str, float] = {}  # payment id → when its POST was scheduled
    outcome = {"not_final": 0, "errors": 0, "dropped": 0}
    in_flight: set[asyncio.Task[None]] = set()
    offset = len(accounts) // 2  # other payers than (a)'s first ones

    async def one(n: int, scheduled: float, scheduled_wall: float) -> None:
        try:
            status, body = await client.call("POST", "/v1/payments", payment_body(accounts, offset + n))
            if status != 202:
                outcome["errors"] += 1
                return
            payment_id = json.loads(body)["id"]
            sent_wall[payment_id] = scheduled_wall
            status, body = await client.call("GET", f"/v1/payments/{payment_id}?wait={WAIT_PARAM_S}")
            if status != 200 or json.loads(body)["status"] not in SETTLED_PAYMENT_STATUSES:
                outcome["not_final"] += 1
                return
            to_final_ms.append((time.monotonic() - scheduled) * 1000)
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError):
            outcome["errors"] += 1

    started, started_wall = time.monotonic(), time.time()
    for n in range(count):
        scheduled = started + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        if len(in_flight) >= OPEN_LOOP_IN_FLIGHT_MAX:
            outcome["dropped"] += 1
            continue
        task = asyncio.create_task(one(n, scheduled, started_wall + n / rate))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    offered_s = time.monotonic() - started
    await asyncio.wait_for(asyncio.gather(*in_flight), REQUEST_TIMEOUT_S * 2 + WAIT_PARAM_S)
    return {
        "rate_target": round(rate, 1),
        "rate_offered": round(count / offered_s, 1),
        "payments": count,
        "to_final_via_wait": percentiles(to_final_ms),
        "to_view_updated": percentiles(await view_latencies(dsn, sent_wall)),
        "payment_ids": list(sent_wall),
        **outcome,
    }


async def view_latencies(dsn: str, sent_wall: dict[str, float]) -> list[float]:
    """Scheduled send (wall clock) → the views consumer's updated_at of the final status, ms."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT id, updated_at FROM api_payments WHERE id = ANY($1::text[]) AND status <> 'processing'",
            list(sent_wall),
        )
    finally:
        await connection.close()
    return [(row["updated_at"].timestamp() - sent_wall[row["id"]]) * 1000 for row in rows]


OUTCOME_READ_TIMEOUT_S: Final = 30.0
EVENT_TIMES: Final = """
SELECT p.request_event_id::text, extract(epoch FROM e.created_at)
FROM api_payments AS p JOIN api_events AS e ON e.object_id = p.id AND e.type IN ('payment.succeeded', 'payment.failed')
WHERE p.id = ANY($1::text[])
"""


async def outcome_to_event(config: Settings, payment_ids: list[str]) -> list[float]:
    """Per payment, its outcome record's timestamp (the ledger's relay) → its webhook event's created_at (the
    views consumer), ms: the views consumer's share of outcome → delivery."""
    connection = await asyncpg.connect(config.dsn)
    try:
        recorded = {request: float(at) for request, at in await connection.fetch(EVENT_TIMES, payment_ids)}
    finally:
        await connection.close()
    topic = config.topic(PAYMENT_OUTCOMES)
    ends = {TopicPartition(t, p): end for (t, p), end in (await end_offsets(config, [topic])).items() if end > 0}
    consumer = kafka_clients.consumer(config, "researcher", group_id=None, enable_auto_commit=False)
    latencies: list[float] = []
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        deadline = time.monotonic() + OUTCOME_READ_TIMEOUT_S
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:  # bounded by the deadline
            if time.monotonic() > deadline:
                raise SystemExit(f"the outcomes of {topic} were not read within {OUTCOME_READ_TIMEOUT_S:.0f} s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    found = REQUEST_EVENT_ID.search(record.value or b"")
                    if found and found.group(1).decode() in recorded:
                        latencies.append((recorded[found.group(1).decode()] - record.timestamp / 1000) * 1000)
    finally:
        await consumer.stop()
    return latencies


async def get_rate(client: Client, ids: list[str], *, concurrency: int, duration_s: float) -> dict:
    """(c): GET /v1/payments/{id} answered 200 per second, closed loop."""

    async def read(n: int) -> bool:
        return (await client.call("GET", f"/v1/payments/{ids[n % len(ids)]}"))[0] == 200

    return await closed_loop(read, concurrency=concurrency, duration_s=duration_s)


# --- the run ---------------------------------------------------------------------------------------------


async def new_tenant_key(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        _, key = await Tenants(connection).create(name=f"bench {uuid.uuid4().hex[:8]}")
        return key
    finally:
        await connection.close()


async def api_run(base: Settings, args: argparse.Namespace, processes: Processes) -> dict:
    """(a), (b) and (c) against the API, ledger and views processes on a fresh database and topics."""
    config = with_overrides(
        await fresh(base, "api"),
        api_host=HOST,
        api_port=free_port(),
        ledger_metrics_port=free_port(),
        metrics_port=free_port(),
        state_dir=processes.logs / "state",
    )
    processes.start("ledger", [sys.executable, "-m", "consumers.ledger"], config)
    processes.start("views", [sys.executable, "-m", "consumers.views"], config)
    api = processes.start("api", [sys.executable, "-m", "producers.api"], config)
    key = await new_tenant_key(config.dsn)
    client = Client(config.api_port, {"Authorization": f"Bearer {key}"})
    try:
        await wait_ready(client, "/readyz", processes, "api")
        setup_started = time.monotonic()
        accounts = await open_accounts(client, args.payers)
        funded_s = await wait_settled(config.dsn, "api_top_ups")
        setup = {"payers": len(accounts), "seconds": round(time.monotonic() - setup_started, 1)}
        setup["top_ups_settled_s_after_last"] = round(funded_s, 1)
        before = cpu_s(api.pid)
        maximum, accepted = await api_max(client, accounts, concurrency=args.concurrency, duration_s=args.duration)
        maximum["api_cpu_ms_per_payment"] = cpu_ms_per_call(cpu_s(api.pid) - before, maximum)
        maximum["api_rss_mib"] = round(rss_mib(api.pid), 1)
        maximum["drained_s_after_load"] = round(await wait_settled(config.dsn, "api_payments"), 1)
        maximum["statuses"] = await status_counts(config.dsn)
        paced = await paced_latency(
            client, accounts, rate=maximum["ok_per_s"] / 2, duration_s=args.duration, dsn=config.dsn
        )
        paced["outcome_to_event"] = percentiles(await outcome_to_event(config, paced.pop("payment_ids")))
        before = cpu_s(api.pid)
        reads = await get_rate(client, accepted, concurrency=args.concurrency, duration_s=args.duration)
        reads["api_cpu_ms_per_request"] = cpu_ms_per_call(cpu_s(api.pid) - before, reads)
    finally:
        client.close()
        processes.stop_all()
    bare = await bare_rate(processes, args, accepted)
    return {"setup": setup, "api_max": maximum, "paced": paced, "get": reads, "bare": bare}


async def status_counts(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT status, count(*) AS n FROM api_payments GROUP BY status")
    finally:
        await connection.close()
    return {row["status"]: row["n"] for row in rows}


async def bare_rate(processes: Processes, args: argparse.Namespace, ids: list[str]) -> dict:
    """(c)'s baseline: the same client and concurrency against `--bare-server`."""
    port = free_port()
    bare = processes.start(
        "bare", [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)], Settings()
    )
    client = Client(port, {"Authorization": "Bearer sk_test_bare"})
    try:
        await wait_ready(client, f"/v1/payments/{ids[0] if ids else 'x'}", processes, "bare")
        before = cpu_s(bare.pid)
        reads = await get_rate(client, ids or ["x"], concurrency=args.concurrency, duration_s=args.duration)
        reads["cpu_ms_per_request"] = cpu_ms_per_call(cpu_s(bare.pid) - before, reads)
        return reads
    finally:
        client.close()
        processes.stop("bare")


def serve_bare(port: int) -> None:
    """A FastAPI app with one route returning a constant, served as producers/api/__main__.py serves the API."""
    import uvicorn
    from fastapi import FastAPI

    from producers.api.__main__ import GRACEFUL_SHUTDOWN_S, LISTEN_BACKLOG, bind_socket, run_server

    app = FastAPI()

    @app.get("/v1/payments/{payment_id}")
    async def read(payment_id: str) -> dict[str, Any]:
        return BARE_BODY

    sock = bind_socket(with_overrides(Settings(), api_host=HOST, api_port=port))
    config = uvicorn.Config(
        app, lifespan="on", backlog=LISTEN_BACKLOG, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False
    )
    run_server(uvicorn.Server(config).serve(sockets=[sock]))


def table(result: dict) -> str:
    """The figures, each ratio and whether each target is met, as aligned text."""
    a, b, c = result["api_max"], result["paced"], result["get"]
    ledger = result["ledger"]["settled_per_s"]
    latency = b["to_final_via_wait"]
    rows = [
        ("(a) API accepted payments/s (closed loop)", f"{a['ok_per_s']:,.0f}", "", ""),
        ("(a) ledger settled/s (bench/ledger.py throughput_run)", f"{ledger:,}", "", ""),
        ("(a) ratio API ÷ ledger", f"{result['ratios']['api_vs_ledger']:.3f}", "≥ 0.5", result["met"]["api_vs_ledger"]),
        ("(b) offered payments/s (50% of (a))", f"{b['rate_offered']:,.0f}", "", ""),
        ("(b) POST → final via ?wait p50/p95/p99 ms", f"{latency['p50_ms']}/{latency['p95_ms']}/{latency['p99_ms']}",
         "p99 ≤ 250", result["met"]["p99_ms"]),
        ("(b) POST → view updated_at p50/p95/p99 ms", "/".join(str(b["to_view_updated"][k]) for k in
         ("p50_ms", "p95_ms", "p99_ms")), "", ""),
        ("(b) outcome → webhook event recorded p50/p95/p99 ms", "/".join(str(b["outcome_to_event"][k]) for k in
         ("p50_ms", "p95_ms", "p99_ms")), "", ""),
        ("(c) GET /v1/payments/{id} req/s", f"{c['ok_per_s']:,.0f}", "", ""),
        ("(c) bare FastAPI req/s", f"{result['bare']['ok_per_s']:,.0f}", "", ""),
        ("(c) ratio API GET ÷ bare", f"{result['ratios']['get_vs_bare']:.3f}", "≥ 0.3", result["met"]["get_vs_bare"]),
        ("API CPU ms per POST / per GET; bare per GET", f"{a['api_cpu_ms_per_payment']}/{c['api_cpu_ms_per_request']}/"
         f"{result['bare']['cpu_ms_per_request']}", "", ""),
        ("reference: bare FastAPI req/s ÷ ledger settled/s", f"{result['ratios']['bare_vs_ledger']:.3f}", "", ""),
    ]  # fmt: skip
    width = max(len(row[0]) for row in rows)
    lines = [f"{'figure':<{width}}  {'measured':>14}  {'target':>10}  met"]
    for name, measured, target, met in rows:
        lines.append(f"{name:<{width}}  {measured:>14}  {target:>10}  {'' if met == '' else 'yes' if met else 'NO'}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    base = load_settings()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        processes = Processes(Path(folder))
        try:
            result: dict[str, Any] = await api_run(base, args, processes)
            ledger = await throughput_run(  # the API's accounts: the traffic this bench compares with
                base, payments=args.ledger_payments, hot_share=0.0, label="apiledger", ids="api"
            )
            result["ledger"] = {k: ledger[k] for k in ("payments", "settled", "settled_per_s")}
        finally:
            processes.stop_all()
            if not args.keep:
                await clean_up(base)
    result["ratios"] = {
        "api_vs_ledger": round(result["api_max"]["ok_per_s"] / result["ledger"]["settled_per_s"], 3),
        "get_vs_bare": round(result["get"]["ok_per_s"] / result["bare"]["ok_per_s"], 3),
        # The ceiling of (a)'s ratio for any API in one FastAPI process: one doing no work at all.
        "bare_vs_ledger": round(result["bare"]["ok_per_s"] / result["ledger"]["settled_per_s"], 3),
    }
    result["met"] = {
        "api_vs_ledger": result["ratios"]["api_vs_ledger"] >= TARGETS["api_vs_ledger"],
        "p99_ms": result["paced"]["to_final_via_wait"]["p99_ms"] <= TARGETS["p99_ms"],
        "get_vs_bare": result["ratios"]["get_vs_bare"] >= TARGETS["get_vs_bare"],
    }
    result["machine"] = {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load],
                         "load_after": [round(x, 2) for x in os.getloadavg()],
                         "finished": datetime.now().isoformat(timespec="seconds")}  # fmt: skip
    result["args"] = vars(args)
    print(table(result))
    unsettled = {status: n for status, n in result["api_max"]["statuses"].items() if status != "succeeded"}
    if unsettled:  # the figures then measure refusals, not payments
        print(f"WARNING: not every payment of (a) succeeded: {unsettled}", file=sys.stderr)
    print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join((__doc__ or "").split("\n\n")[2:]),
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured phase (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in the closed loops (default 32)")
    parser.add_argument("--payers", type=int, default=1000, help="pre-funded wallets paying each other (default 1000)")
    parser.add_argument("--ledger-payments", type=int, default=100_000, help="the ledger run's stream (default 100000)")
    parser.add_argument("--quick", action="store_true", help="3 s phases, 200 payers, 30,000 ledger payments")
    parser.add_argument("--keep", action="store_true", help="keep the run's databases and topics")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.payers, args.ledger_payments = 3.0, 200, 30_000
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.bare_server:
        serve_bare(arguments.bare_server)
    else:
        asyncio.run(main(arguments))
