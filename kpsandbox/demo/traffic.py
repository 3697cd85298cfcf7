"""A little real API traffic at the end of `kpsandbox demo --keep-up`, so the operator console's API
and webhook graphs show what the API and the dispatcher did for a client.

The simulation's events go straight onto Kafka: they never touch the HTTP API and no webhook
endpoint exists, so without this the API's graphs would count only Prometheus's own scrapes of
/metrics and the webhook ratios would be 0 ÷ 0 ("no data yet"). Here, as a startup would: a tenant
for this run; a webhook endpoint pointing at a receiver inside this process (it takes every
delivery with a 204); a few flows of producers/triggers.py (payments that succeed, one the ledger
refuses, a refund), each waiting for its statuses and events; then a bounded wait until every
delivery has finished and Prometheus has scraped and recorded the result. The endpoint is deleted
before the receiver stops, so nothing is later sent to a port nobody listens on.

Needs the five apps just started on these settings (`apps.start_apps`: counters at 0) and the stack's Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import asyncpg

from infra.db import CONNECT_TIMEOUT_S
from infra.settings import Settings
from producers.api.tenants import Tenants
from producers.api_client import ApiClient, api_base_url
from producers.triggers import run_trigger
from schemas.api.webhook_endpoints import WebhookEndpointCreate
from schemas.webhooks import WebhookEventType

# Real flows through the API; each one waits (bounded, producers/triggers.py) for what it expects.
FLOWS: Final = (
    "payment.succeeded",
    "payment.succeeded",
    "payment.failed.insufficient_funds",
    "refund.succeeded",
)
EVENT_TYPES: Final[tuple[WebhookEventType, ...]] = (
    "payment.succeeded",
    "payment.failed",
    "refund.succeeded",
    "payment.refunded",
)
FLOW_EVENTS_WAIT_S: Final = 15.0
DELIVERIES_WAIT_S: Final = 30.0  # every delivery to the receiver has finished (delivered or failed)
SCRAPED_WAIT_S: Final = 45.0  # Prometheus scrapes every 5 s and records every 5 s; a rate needs two scrapes
POLL_S: Final = 0.5
HTTP_TIMEOUT_S: Final = 5.0
# `{window}` is the time since the traffic began: the apps have just (re)started at 0, so a sample
# in it is theirs, never an earlier run's on the same ports. Before the traffic: Prometheus has
# scraped the fresh API and dispatcher once, so a rate sees the counters rise from there.
READY_QUERIES: Final = (
    'max_over_time(up{{job="kpsandbox-api"}}[{window}]) == 1',
    'max_over_time(up{{job="kpsandbox-webhooks"}}[{window}]) == 1',
)
# After it: every app scraped once more after the traffic `{ended}` (Unix seconds), its counters
# seen, and the ratios and quantiles the console draws recorded (kpsandbox_rules.yml, group
# kpsandbox.console).
SCRAPED_QUERIES: Final = (
    'min(timestamp(up{{job=~"kpsandbox-api|kpsandbox-ledger|kpsandbox-webhooks"}})) > {ended}',
    'max_over_time(kpsandbox_api_requests_total{{route="/v1/payments",status="202"}}[{window}]) > 0',
    'max_over_time(kpsandbox_webhook_attempts_total{{result="delivered"}}[{window}]) > 0',
    "kpsandbox:webhook_attempts_delivered:ratio_rate5m > 0",
    "kpsandbox:webhook_attempt_duration_seconds:p95_5m >= 0",
)


@dataclass
class Receiver:
    """A webhook receiver on a free loopback port (a thread) that answers 204 (or, with `fail_every`
    N, 500 to every N-th POST, so retries happen)."""

    server: ThreadingHTTPServer
    received: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where the endpoint sends."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"


@contextlib.contextmanager
def receiving(fail_every: int | None = None) -> Iterator[Receiver]:
    """Runs a Receiver until the block ends (also the integration tests' receiver)."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received = holder[0].received
            received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(500 if fail_every and len(received) % fail_every == 0 else 204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            """Quiet: the demo prints its own summary, and tests show what they assert."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, name="demo-webhook-receiver", daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Traffic:
    """What the traffic did: flows run, webhook deliveries by final status, what Prometheus lacks."""

    flows: int
    deliveries: dict[str, int]
    not_scraped: list[str]


async def create_tenant(settings: Settings, name: str) -> str:
    """A tenant of the run's database; its secret key (shown nowhere: it lives for this traffic)."""
    connection = await asyncpg.connect(settings.dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        _, key = await Tenants(connection).create(name=name)
        return key
    finally:
        await connection.close()


async def _finished_deliveries(client: ApiClient, endpoint: str, expected: int) -> dict[str, int]:
    """Polls the endpoint's delivery log until `expected` deliveries exist and none is pending (at
    most DELIVERIES_WAIT_S); the count by status."""
    counts: dict[str, int] = {}
    for _ in range(math.ceil(DELIVERIES_WAIT_S / POLL_S) + 1):
        deliveries = (await client.endpoint_deliveries(endpoint)).data
        counts = {}
        for delivery in deliveries:
            counts[delivery.status] = counts.get(delivery.status, 0) + 1
        if len(deliveries) >= expected and not counts.get("pending"):
            break
        await asyncio.sleep(POLL_S)
    return counts


def has_sample(prometheus: str, expr: str) -> bool:
    """True when the instant query has at least one sample (False on any error)."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return bool(json.loads(response.read())["data"]["result"])
    except (OSError, ValueError, KeyError):
        return False


def scrapes_port(prometheus: str, port: int) -> bool:
    """True when Prometheus has an active target on `port` (its configuration, not timing: a
    Prometheus that does not scrape these apps — another stack's, or an external one — is never waited for)."""
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/targets?state=active", timeout=HTTP_TIMEOUT_S) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
    except (OSError, ValueError, KeyError):
        return False
    return any(urllib.parse.urlsplit(target.get("scrapeUrl", "")).port == port for target in targets)


async def wait_scraped(prometheus: str, queries: tuple[str, ...], *, since: float, ended: float = 0) -> list[str]:
    """Waits (at most SCRAPED_WAIT_S) until every query has a sample — `{window}` in it is the
    seconds since `since`, `{ended}` is `ended` (both Unix seconds); the ones still without."""
    pending = list(queries)
    for _ in range(math.ceil(SCRAPED_WAIT_S / POLL_S) + 1):
        window = f"{max(1, math.ceil(time.time() - since))}s"
        pending = [
            query
            for query in pending
            if not await asyncio.to_thread(has_sample, prometheus, query.format(window=window, ended=f"{ended:.3f}"))
        ]
        if not pending:
            break
        await asyncio.sleep(POLL_S)
    return pending


async def api_traffic(settings: Settings, say: Callable[[str], None] = lambda _: None) -> Traffic:
    """Runs FLOWS through the running API with a webhook endpoint to a local receiver, waits until
    the deliveries finished and Prometheus has them, and deletes the endpoint."""
    began = time.time()
    scraped = await asyncio.to_thread(scrapes_port, settings.prometheus, settings.api_port)
    if scraped:
        say("waiting for Prometheus to scrape the API and the webhook dispatcher once")
        await wait_scraped(settings.prometheus, READY_QUERIES, since=began)
    key = await create_tenant(settings, f"demo traffic {uuid.uuid4().hex[:8]}")
    async with ApiClient(api_base_url(settings.api_host, settings.api_port), key) as client:
        with receiving() as receiver:
            endpoint = await client.create_endpoint(WebhookEndpointCreate(url=receiver.url, events=list(EVENT_TYPES)))
            try:
                events = 0
                for number, flow in enumerate(FLOWS, 1):
                    say(f"API flow {number}/{len(FLOWS)}: {flow}")
                    result = await run_trigger(client, flow, {}, events_wait_s=FLOW_EVENTS_WAIT_S)
                    events += sum(event.type in EVENT_TYPES for event in result.events)
                say("waiting for the webhook deliveries")
                deliveries = await _finished_deliveries(client, endpoint.id, events)
            finally:
                await client.delete_endpoint(endpoint.id)
    if not scraped:
        return Traffic(
            len(FLOWS), deliveries, [f"{settings.prometheus} does not scrape the API's port {settings.api_port}"]
        )
    say("waiting for Prometheus to scrape the API, the ledger and the webhook dispatcher")
    missing = await wait_scraped(settings.prometheus, SCRAPED_QUERIES, since=began, ended=time.time())
    return Traffic(len(FLOWS), deliveries, missing)


def describe(traffic: Traffic) -> str:
    """One line for the demo's output: what the traffic did, and what the console may still lack."""
    delivered = ", ".join(f"{count} {status}" for status, count in sorted(traffic.deliveries.items())) or "none"
    line = f"API traffic for the console: {traffic.flows} flows, webhook deliveries {delivered}"
    if not traffic.deliveries.get("delivered"):
        return f"[yellow]{line} — no webhook was delivered: read the webhooks app's log (`kpsandbox status`)[/]"
    if traffic.not_scraped:
        return f"[yellow]{line} — Prometheus has no data yet for: {'; '.join(traffic.not_scraped)}[/]"
    return line
