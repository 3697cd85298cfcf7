"""`kpsandbox metrics serve`: run the metrics consumer and its Prometheus exporter."""

from __future__ import annotations

import asyncio
import signal

import typer

from consumers.metrics.consumer import GROUP_DEFAULT, MetricsSummary, lower_priority, run_metrics
from infra.settings import Settings
from kpsandbox.console import console, settings

metrics_app = typer.Typer(help="Cash-to-digital and operational metrics for Prometheus.", no_args_is_help=True)


async def _serve(config: Settings, until_idle: bool, group: str) -> MetricsSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)  # Ctrl-C: finish the batch, save, stop
    try:
        return await run_metrics(config, until_idle=until_idle, stop=stop, group=group)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@metrics_app.command("serve")
def serve(
    until_idle: bool = typer.Option(False, "--until-idle", help="Stop once every topic is read to its end."),
    group: str = typer.Option(GROUP_DEFAULT, help="Kafka consumer group (one metrics consumer per group)."),
) -> None:
    """Consume outcomes, cash, orders and accounts; serve /metrics on KPSANDBOX_METRICS_PORT."""
    config = settings()
    lower_priority()
    console.print(f"serving http://127.0.0.1:{config.metrics_port}/metrics (Ctrl-C stops and saves the state)")
    summary = asyncio.run(_serve(config, until_idle, group))
    resumed = "resumed from the saved state, " if summary.resumed else ""
    console.print(f"metrics: {resumed}{summary.records:,} records read, state saved {summary.saves} time(s)")


def register(app: typer.Typer) -> None:
    """Adds the `metrics` group (`kpsandbox metrics serve`)."""
    app.add_typer(metrics_app, name="metrics")
