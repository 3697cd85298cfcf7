"""`kpsandbox up [--apps] | status | down`: the local Kafka, PostgreSQL and Prometheus, and the
sandbox's own apps (ledger, metrics) in the background; `partition cut | heal` for a cluster with a
partitionable broker."""

from __future__ import annotations

import time
from enum import StrEnum

import typer
from rich.table import Table

from infra.errors import SandboxError
from infra.local import apps as local_apps
from infra.local import netns, stack
from infra.local.base import ServiceStatus
from infra.local.kafka_jars import check_java, fetch_jars
from infra.local.prometheus import console_served, console_url
from kpsandbox.console import console, human_bytes, settings


def status_table(statuses: list[ServiceStatus]) -> Table:
    """A table with one row per service and per app (an app's endpoint is its health URL)."""
    table = Table(title="kpsandbox services and apps", title_justify="left")
    for column in ("name", "mode", "endpoint", "version", "health", "pid", "rss"):
        table.add_column(column)
    for s in statuses:
        table.add_row(s.name, s.mode, s.endpoint, s.version, _health(s), str(s.pid or "-"),
                      human_bytes(s.rss_bytes) if s.rss_bytes else "-")  # fmt: skip
    return table


def _health(s: ServiceStatus) -> str:
    if s.healthy:
        return "[green]healthy[/]"
    if s.mode == local_apps.APP_MODE and s.pid is None:
        return "[dim]not running[/]"
    return "[red]unhealthy[/]" if s.mode == local_apps.APP_MODE else "[red]down[/]"


def up(
    with_apps: bool = typer.Option(
        False,
        "--apps",
        help="Also start the apps (ledger, metrics consumer, API, payment views, webhook dispatcher; the tenant "
        "gateway when Kafka is secured) in the background (PID files and logs in "
        "<state folder>/apps/); `kpsandbox down` stops them. `kpsandbox serve` runs them in the foreground.",
    ),
) -> None:
    """Start real Apache Kafka (KRaft), PostgreSQL and Prometheus locally, create topics, migrate.

    Idempotent: services already running are reported, not started twice. Services pointed
    elsewhere by KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS / KPSANDBOX_DATABASE_URL /
    KPSANDBOX_PROMETHEUS_URL are not started; they are only checked. With --apps the ledger and
    the metrics consumer are started afterwards and waited for until their /metrics answer.
    """
    config = settings()
    began = time.monotonic()
    apps_started: list[str] = []
    with console.status("starting services…") as spinner:
        report = stack.up(config, say=lambda text: spinner.update(f"{text}…"))
        if with_apps:
            apps_started = local_apps.start_apps(config, say=lambda text: spinner.update(f"{text}…"))
    app_rows = local_apps.app_statuses(config) if with_apps else []
    console.print(status_table(report.statuses + app_rows))
    if report.started or apps_started:
        console.print(f"started: {', '.join(report.started + apps_started)}")
    already = report.already_running + [s.name for s in app_rows if s.pid and s.name not in apps_started]
    if already:
        console.print(f"already running (left as they were): {', '.join(already)}")
    if report.external:
        console.print(f"external (not started here): {', '.join(report.external)}")
    console.print(
        f"topics created: {len(report.topics_created)}, migrations applied: "
        f"{len(report.migrations_applied)}, ready in {time.monotonic() - began:.1f} s"
    )
    console.print(f"state folder: {config.state_dir}")
    console.print(console_line(config.prometheus))
    if with_apps:
        console.print(f"app logs: {config.state_dir / local_apps.APPS_FOLDER}/*.log — `kpsandbox down` stops them")


def status() -> None:
    """Show each service's endpoint, version and health, each app's URL and health, and the
    operator console's URL.

    Exit status 1 if a service is down or a running app does not answer (apps that are not
    running are listed, not counted as failures: they are optional, see `up --apps` and `serve`).
    An external service (KPSANDBOX_PROMETHEUS_URL, …) that does not answer is a two-line error
    naming the variable (status 2): `kpsandbox up` cannot start it.
    """
    config = settings()
    statuses = stack.status(config)
    app_rows = local_apps.app_statuses(config)
    console.print(status_table(statuses + app_rows))
    for row in statuses:
        if row.mode == "external" and not row.healthy:
            raise SandboxError(
                f"{row.name} at {row.endpoint} does not answer",
                f"check that it runs and that {stack.EXTERNAL_SETTING[row.name]} points at it "
                "(or unset it to run one locally)",
            )
    failed = False
    if not all(s.healthy for s in statuses):
        console.print("[red]some services are down[/] — run `kpsandbox up`")
        failed = True
    else:
        console.print(console_line(config.prometheus))
    for row in app_rows:
        if row.pid is not None and not row.healthy:
            console.print(f"[red]{row.name} runs but does not answer at {row.endpoint}[/] — read {row.detail}")
            failed = True
    if failed:
        raise typer.Exit(1)


def console_line(prometheus: str) -> str:
    """Where the operator console is, or why this Prometheus does not serve it."""
    if console_served(prometheus):
        return f"operator console: {console_url(prometheus)}"
    return (
        f"[yellow]operator console: not served by the Prometheus at {prometheus}[/] — it runs without "
        "--web.console.templates: `kpsandbox up` restarts the local one with them (an external one needs "
        "infra/prometheus/consoles and console_libraries passed by those flags)"
    )


def down() -> None:
    """Stop the apps (ledger, metrics: each finishes its batch), then exactly the services
    `kpsandbox up` started (by their PID files). Data is kept."""
    stopped = stack.down(settings())
    if stopped:
        console.print(f"stopped: {', '.join(stopped)}")
    else:
        console.print("nothing was running — no app or service started by `kpsandbox up` was found")


def fetch_kafka() -> None:
    """Download the pinned Apache Kafka and its runtime jars from Maven Central into the cache (once)."""
    config = settings()
    check_java()
    with console.status(f"fetching Kafka {config.kafka_version} from Maven Central…"):
        libs = fetch_jars(config)
    console.print(f"Kafka {config.kafka_version}: {len(list(libs.glob('*.jar')))} jars in {libs}")


class PartitionAction(StrEnum):
    cut = "cut"
    heal = "heal"


def partition(action: PartitionAction = typer.Argument(..., help="cut: take its link down; heal: bring it up")) -> None:
    """Cut the partitionable Kafka broker off the network, or heal the cut.

    The broker named by KPSANDBOX_KAFKA_PARTITIONABLE_BROKER runs in its own network namespace (root
    only): `cut` takes its link down as a pulled cable would. The process keeps running, unreachable;
    after about 9 s the controller fences it and its partitions get new leaders, and clients time out
    on it and move on. `heal` brings the link back; it catches up and rejoins every ISR."""
    config = settings()
    broker = config.kafka_partitionable_broker
    if broker is None or not config.kafka_embedded:
        raise SandboxError(
            "no broker of this sandbox can be cut off: KPSANDBOX_KAFKA_PARTITIONABLE_BROKER is not set",
            "start a cluster with one: KPSANDBOX_KAFKA_BROKERS=3 KPSANDBOX_KAFKA_PARTITIONABLE_BROKER=3 kpsandbox up "
            "(as root), with the same settings for this command",
        )
    netns.require()
    if not netns.exists():
        raise SandboxError(
            f"broker kafka-{broker}'s network namespace is not there: the cluster is not running",
            "start it with `kpsandbox up` (same settings), then cut or heal",
        )
    endpoint = config.bootstrap_servers.split(",")[broker - 1]
    if action is PartitionAction.cut:
        netns.cut()
        console.print(f"kafka-{broker} ({endpoint}) is cut off: `kpsandbox status` shows it down; "
                      "`kpsandbox partition heal` reconnects it")  # fmt: skip
    else:
        netns.heal()
        console.print(f"kafka-{broker} ({endpoint}) is reconnected: it catches up and rejoins the ISRs")


def register(app: typer.Typer) -> None:
    """Adds up, status, down, fetch-kafka and partition."""
    app.command("fetch-kafka")(fetch_kafka)
    app.command()(up)
    app.command()(status)
    app.command()(down)
    app.command()(partition)
