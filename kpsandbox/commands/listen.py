"""`kpsandbox listen --forward-to URL`: a temporary webhook endpoint for your local receiver, and a live
table of the deliveries the sandbox's dispatcher makes to it (producers/listen.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Final

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kpsandbox.commands.api_options import API_KEY_OPTION, API_URL_OPTION, api_client
from kpsandbox.console import console
from producers.listen import AttemptRow, DeliveryLog, ListenResult, listen, summary
from schemas.api.webhook_endpoints import WebhookEndpointWithSecret
from schemas.webhooks import WEBHOOK_EVENT_TYPES

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
LISTEN_HELP: Final = (
    "Forward your webhook events to a local URL while this runs.\n\n"
    "Makes a temporary webhook endpoint for URL through the API, prints its signing secret (whsec_…) for your "
    "receiver to verify with, and shows every delivery attempt live. The sandbox's own dispatcher — the "
    "`webhooks` app of `kpsandbox serve` — does the forwarding, signed (Standard Webhooks) and retried on "
    "KPSANDBOX_WEBHOOK_RETRY_SCHEDULE, exactly as for any endpoint, so every attempt is also in the delivery "
    "log. Ctrl-C (or --duration / --once) stops it and deletes the endpoint."
)


def attempts_table(rows: list[AttemptRow]) -> Table:
    """The deliveries table: one row per attempt, oldest first."""
    table = Table(title="deliveries (latest attempts)", title_justify="left")
    for column in ("time", "event type", "event id", "attempt", "status", "latency"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row.attempted_at.astimezone().strftime("%H:%M:%S"), row.event_type, row.event, str(row.attempt),
            Text(row.status, style="green" if row.ok else "red"), f"{row.latency_ms} ms",
        )  # fmt: skip
    return table


def _line(row: AttemptRow) -> str:
    """An attempt as one plain line, for output that is not a terminal (logs, tests, pipes)."""
    at = row.attempted_at.astimezone().strftime("%H:%M:%S")
    return f"{at}  {row.event_type}  {row.event}  attempt {row.attempt}  {row.status}  {row.latency_ms} ms"


def _print_ready(endpoint: WebhookEndpointWithSecret) -> None:
    console.print(f"Ready: the sandbox delivers {len(endpoint.events)} event type(s) to {endpoint.url}", markup=False)
    console.print(f"temporary endpoint: {endpoint.id}", markup=False)
    console.print(f"signing secret:     {endpoint.secret}", markup=False)
    console.print(
        "verify each delivery with it (docs/webhooks.md); Ctrl-C stops and deletes the endpoint", markup=False
    )


def listen_command(
    forward_to: str = typer.Option(
        ..., "--forward-to", metavar="URL", help="Your receiver, e.g. http://localhost:4242/webhooks."
    ),
    events: str | None = typer.Option(
        None,
        "--events",
        metavar="TYPE,…",
        help="Comma-separated event types (default: all): " + ", ".join(WEBHOOK_EVENT_TYPES),
    ),
    duration: float | None = typer.Option(None, "--duration", min=0, metavar="S", help="Stop after S seconds."),
    once: bool = typer.Option(False, "--once", help="Stop once the first delivery is delivered or has failed."),
    api_key: str = API_KEY_OPTION,
    api_url: str | None = API_URL_OPTION,
) -> None:
    """Forward your webhook events to a local URL while this runs (LISTEN_HELP says how)."""
    wanted = [name.strip() for name in events.split(",") if name.strip()] if events else None
    live = Live(attempts_table([]), console=console, auto_refresh=False) if console.is_terminal else None

    def on_attempts(new: list[AttemptRow], log: DeliveryLog) -> None:
        if live is not None:
            live.update(attempts_table(list(log.rows)), refresh=True)
            return
        for row in new:
            console.print(_line(row), markup=False, soft_wrap=True)

    def on_ready(endpoint: WebhookEndpointWithSecret) -> None:
        _print_ready(endpoint)
        if live is not None:
            live.start()

    async def work() -> ListenResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in STOP_SIGNALS:
            loop.add_signal_handler(number, stop.set)
        async with api_client(api_key, api_url) as client:
            return await listen(client, forward_to, wanted, stop=stop, duration_s=duration, once=once,
                                on_ready=on_ready, on_attempts=on_attempts)  # fmt: skip

    try:
        result = asyncio.run(work())
    finally:
        if live is not None:
            with contextlib.suppress(Exception):
                live.stop()
    if live is None and result.log.rows:
        console.print(attempts_table(list(result.log.rows)))
    console.print(summary(result, forward_to), markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Adds `listen`."""
    app.command("listen", help=LISTEN_HELP)(listen_command)
