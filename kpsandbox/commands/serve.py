"""`kpsandbox serve`: the whole live sandbox in the foreground until Ctrl-C."""

from __future__ import annotations

import time

import typer

from infra.local import apps, stack
from infra.local.supervisor import RESTART_BACKOFF_S_MAX, RESTART_BACKOFF_S_MIN, RESTARTS_IN_A_ROW_MAX, Supervisor
from kpsandbox.commands.services import console_line
from kpsandbox.console import console, settings
from producers.live import DAYS_DEFAULT, RATE_MAX, check_rate
from producers.sim.engine import check_parameters


def serve(
    economy_rate: float | None = typer.Option(
        None,
        "--economy-rate",
        metavar="N",
        help=f"Also run a background economy: the simulation produced onto Kafka at about N events per "
        f"second of wall-clock time (at most {RATE_MAX:,.0f}), settled by the ledger like any traffic.",
    ),
    economy_seed: int | None = typer.Option(
        None, "--economy-seed", help="Seed of the background economy (default: the current time, so reruns differ)."
    ),
    economy_citizens: int = typer.Option(2_000, "--economy-citizens", help="Citizens in the background economy."),
    economy_merchants: int = typer.Option(200, "--economy-merchants", help="Merchants in the background economy."),
    stop_services: bool = typer.Option(
        False, "--stop-services", help="On Ctrl-C also stop the services this sandbox runs (default: leave them up)."
    ),
) -> None:
    """Run the live sandbox in the foreground until Ctrl-C (see SERVE_HELP)."""
    if economy_rate is not None:
        check_rate(economy_rate)
        check_parameters(DAYS_DEFAULT, economy_citizens, economy_merchants)
    config = settings()
    specs = list(apps.app_specs(config))
    if economy_rate is not None:
        seed = economy_seed if economy_seed is not None else int(time.time())
        specs.append(apps.economy(rate=economy_rate, seed=seed, citizens=economy_citizens,
                                  merchants=economy_merchants))  # fmt: skip
        console.print(f"background economy: seed {seed}, about {economy_rate:g} events/s (--economy-seed repeats it)")
    with console.status("starting services…") as spinner:
        report = stack.up(config, say=lambda text: spinner.update(f"{text}…"))
    if report.started:
        console.print(f"started services: {', '.join(report.started)}")
    console.print(f"Prometheus: {config.prometheus}   Kafka: {config.bootstrap_servers}")
    console.print(console_line(config.prometheus))
    try:
        Supervisor(config, specs, say=console.print).serve_until_signalled()
        console.print("apps stopped")
    finally:
        if stop_services:
            console.print(f"stopped: {', '.join(stack.down(config)) or 'nothing'}")
        else:
            console.print("services left running — `kpsandbox down` stops them")


SERVE_HELP = (
    "Run the live sandbox in the foreground: the services (as `up`), then the apps — the ledger, the metrics "
    "consumer, the HTTP API, its payment views and the webhook dispatcher, plus the tenant gateway when Kafka "
    "is secured (KPSANDBOX_KAFKA_SECURITY=sasl_ssl) — as supervised child processes, until Ctrl-C.\n\n"
    f"Prints each app's URL. An app that exits is restarted after {RESTART_BACKOFF_S_MIN:.0f}, 2, 4 … seconds "
    f"(at most {RESTART_BACKOFF_S_MAX:.0f} s between tries; after {RESTARTS_IN_A_ROW_MAX} crashes in a row "
    "serve stops and quotes the app's log).\n\n"
    "Ctrl-C (or SIGTERM) stops the apps cleanly — each finishes its batch — and leaves the services running "
    "for the next command unless --stop-services. Apps already running in the background (`up --apps`) are "
    "stopped and supervised here instead. Logs: <state folder>/apps/*.log."
)


def register(app: typer.Typer) -> None:
    """Adds `serve`."""
    app.command(help=SERVE_HELP)(serve)
