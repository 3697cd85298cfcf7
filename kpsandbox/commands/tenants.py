"""`kpsandbox tenants create|list|revoke|rotate-kafka`: the startups that may call the HTTP API, and
their keys; on a secured broker (SASL) also their Kafka credentials, topics and ACLs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import asyncpg
import typer
from rich.table import Table

from infra.db import CONNECT_TIMEOUT_S, database_unreachable, require_table
from infra.errors import SandboxError
from infra.kafka_tenants import TenantKafka, grant_tenant, kafka_tenants_enabled, revoke_tenant
from infra.settings import Settings
from kpsandbox.console import console, settings
from producers.api.tenants import NAME_RULE, Revocation, Tenant, Tenants

T = TypeVar("T")

tenants_app = typer.Typer(
    help=(
        "Tenants (startups): each gets a secret API key (sk_test_…), sent as `Authorization: Bearer <key>`, "
        "shown once and stored only as a hash. On a secured broker (KPSANDBOX_KAFKA_SECURITY=sasl_ssl) each "
        "also gets a Kafka user, its own requests and outcomes topics, and ACLs (docs/security.md)."
    ),
    no_args_is_help=True,
)


async def _with_tenants(config: Settings, work: Callable[[Tenants], Awaitable[T]]) -> T:
    """Runs `work` on the tenants table of the configured database, then closes the connection."""
    try:
        connection = await asyncpg.connect(config.dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise database_unreachable(config.dsn) from error
    try:
        await require_table(connection, "api_tenants")
        return await work(Tenants(connection))
    finally:
        await connection.close()


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@tenants_app.command("create")
def create(name: str = typer.Argument(..., help=f"The tenant's name: {NAME_RULE}.")) -> None:
    """Create a tenant and print its secret key — the only time the key is shown. On a secured broker also
    print its Kafka credentials and topics (kafka_username=, kafka_password=, requests_topic=, outcomes_topic=)."""

    async def work(tenants: Tenants) -> tuple[Tenant, str]:
        return await tenants.create(name=name)

    config = settings()
    tenant, key = asyncio.run(_with_tenants(config, work))
    kafka = None
    if kafka_tenants_enabled(config):
        try:
            kafka = asyncio.run(grant_tenant(config, tenant.id))
        except BaseException:  # nothing half-made: the API key goes too
            asyncio.run(_with_tenants(config, lambda tenants: tenants.revoke(name_or_id=tenant.id)))
            raise
    console.print(f"created tenant {tenant.name} ({tenant.id})")
    console.print(f"secret key: {key}", soft_wrap=True, markup=False)
    console.print("the key is shown only this once: it is stored hashed and cannot be shown again — keep it now")
    console.print(
        f"use it on every API request as the header  Authorization: Bearer {key}", soft_wrap=True, markup=False
    )
    if kafka is not None:
        _print_kafka(kafka)


def _print_kafka(kafka: TenantKafka) -> None:
    """One `name=value` line each, for a script to read (the password is shown once)."""
    for name, value in (
        ("kafka_username", kafka.username),
        ("kafka_password", kafka.password),
        ("requests_topic", kafka.requests_topic),
        ("outcomes_topic", kafka.outcomes_topic),
    ):
        console.print(f"{name}={value}", soft_wrap=True, markup=False, highlight=False)


def _print_tenants(tenants: Sequence[Tenant]) -> None:
    table = Table(title="API tenants", title_justify="left")
    for column in ("id", "name", "key prefix", "created", "revoked"):
        table.add_column(column, no_wrap=True)
    for tenant in tenants:
        table.add_row(
            tenant.id, tenant.name, tenant.key_prefix + "…", _when(tenant.created_at), _when(tenant.revoked_at)
        )
    console.print(table)


@tenants_app.command("list")
def list_tenants() -> None:
    """List every tenant (id, name, key prefix, created, revoked); keys themselves are never stored."""

    async def work(tenants: Tenants) -> Sequence[Tenant]:
        return await tenants.list()

    found = asyncio.run(_with_tenants(settings(), work))
    if not found:
        console.print("no tenants yet — create one with `kpsandbox tenants create NAME`")
        return
    _print_tenants(found)


@tenants_app.command("revoke")
def revoke(name_or_id: str = typer.Argument(..., metavar="NAME|ID", help="The tenant's name or id (ten_…).")) -> None:
    """Revoke a tenant: its key stops working at once, and on a secured broker its Kafka login and ACLs go
    too (its topics stay). Revoking cannot be undone."""

    async def work(tenants: Tenants) -> Revocation:
        return await tenants.revoke(name_or_id=name_or_id)

    config = settings()
    done = asyncio.run(_with_tenants(config, work))
    tenant = done.tenant
    if done.already_revoked:
        console.print(f"tenant {tenant.name} ({tenant.id}) was already revoked at {_when(tenant.revoked_at)}")
    else:
        console.print(f"revoked tenant {tenant.name} ({tenant.id}): its key {tenant.key_prefix}… no longer works")
    if kafka_tenants_enabled(config):  # again for an already revoked tenant: a half-done revoke completes
        removed = asyncio.run(revoke_tenant(config, tenant.id))
        console.print(f"Kafka: its credentials and {removed} ACLs are removed; it can no longer log in")


@tenants_app.command("rotate-kafka")
def rotate_kafka(
    name_or_id: str = typer.Argument(..., metavar="NAME|ID", help="The tenant's name or id (ten_…)."),
) -> None:
    """Give an active tenant a new Kafka password (secured broker only); the old one no longer logs in."""
    config = settings()
    if not kafka_tenants_enabled(config):
        raise SandboxError(
            "Kafka does not authenticate clients here, so tenants have no Kafka credentials",
            "start the sandbox with KPSANDBOX_KAFKA_SECURITY=sasl_ssl (or set KPSANDBOX_KAFKA_SECURITY_PROTOCOL)",
        )

    async def work(tenants: Tenants) -> Sequence[Tenant]:
        return await tenants.list()

    found = [t for t in asyncio.run(_with_tenants(config, work)) if name_or_id in (t.id, t.name)]
    if not found or found[0].revoked:
        raise SandboxError(
            f"there is no active tenant named {name_or_id!r} or with that id",
            "see the tenants' names and ids with `kpsandbox tenants list`",
        )
    _print_kafka(asyncio.run(grant_tenant(config, found[0].id)))


def register(app: typer.Typer) -> None:
    """Adds the `tenants` group."""
    app.add_typer(tenants_app, name="tenants")
