"""The three local services as one stack: `up`, `status` and `down` (which stops the apps first).

`up` is idempotent: services already running are reported, not started twice. After the
services are healthy it creates the catalog topics and applies database migrations, so every
command after `up` finds the sandbox ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from infra.db import migrate
from infra.errors import SandboxError
from infra.kafka_admin import ensure_topics
from infra.kafka_principals import apply_service_acls
from infra.local import apps, procs
from infra.local.base import LocalService, ServiceStatus
from infra.local.kafka import KafkaService
from infra.local.postgres import PostgresService
from infra.local.prometheus import PrometheusService
from infra.secrets import deployment_key
from infra.settings import Settings

Service = LocalService
Say = Callable[[str], None]


def services(settings: Settings) -> list[Service]:
    """The stack, in start order (PostgreSQL and Prometheus start fast; Kafka is slowest)."""
    return [PostgresService(settings), PrometheusService(settings), KafkaService(settings)]


@dataclass
class UpReport:
    """What `up` did."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)
    statuses: list[ServiceStatus] = field(default_factory=list)


def up(settings: Settings, say: Say = lambda _: None) -> UpReport:
    """Starts what is not running, waits for health, creates topics, applies migrations."""
    report = UpReport()
    say("preparing the deployment key")
    deployment_key(settings)  # MSISDN/CNIC tokens: made once, here, so a damaged key fails `up` at once
    stack = services(settings)
    try:
        _start(stack, report, say)
    except SandboxError:  # e.g. Kafka's port is taken: stop what this call started, leave nothing half-up
        for service in reversed(stack):
            if service.name in report.started:
                service.stop()
        raise
    for service in stack:
        say(f"waiting for {service.name}")
        if service.embedded:
            service.wait_healthy()
        else:
            check_external(service)
    say("creating topics")
    report.topics_created = asyncio.run(ensure_topics(settings))
    if settings.kafka_embedded and settings.kafka_security == "sasl_ssl":
        say("granting the sandbox principals their Kafka ACLs")
        asyncio.run(apply_service_acls(settings))  # idempotent, after the topics (infra/kafka_principals.py)
    say("applying migrations")
    report.migrations_applied = asyncio.run(migrate(settings.dsn))
    report.statuses = status(settings)
    return report


def _start(stack: list[Service], report: UpReport, say: Say) -> None:
    """Prepares and starts each embedded service not running yet, noting what it did in `report`."""
    for service in stack:
        if not service.embedded:
            report.external.append(service.name)
            continue
        say(f"preparing {service.name}")
        service.prepare()
        if service.start():
            report.started.append(service.name)
            say(f"started {service.name}")
        else:
            report.already_running.append(service.name)


EXTERNAL_SETTING: Final = {
    "kafka": "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS",
    "postgres": "KPSANDBOX_DATABASE_URL",
    "prometheus": "KPSANDBOX_PROMETHEUS_URL",
}
EXTERNAL_WAIT_S: Final = 10.0


def check_external(service: Service) -> None:
    """An external service must answer within a few seconds: we cannot start it, only report it."""
    procs.wait_until(
        lambda: service.status().healthy,
        timeout_s=EXTERNAL_WAIT_S,
        what=f"{service.name} at {service.endpoint}",
        hint=f"check that it runs and that {EXTERNAL_SETTING[service.name]} points at it "
        "(or unset it to run one locally)",
    )


def status(settings: Settings) -> list[ServiceStatus]:
    """Each service's endpoint, health and version; a local Kafka cluster as one line per broker."""
    lines: list[ServiceStatus] = []
    for service in services(settings):
        lines += service.statuses() if isinstance(service, KafkaService) else [service.status()]
    return lines


def down(settings: Settings) -> list[str]:
    """Stops the sandbox's apps (infra/local/apps.py) first, so none loses its services mid-batch,
    then exactly the services `up` started (by PID file); returns the names stopped."""
    stopped = apps.stop_apps(settings)
    for service in reversed(services(settings)):
        if service.embedded and service.stop():
            stopped.append(service.name)
    return stopped
