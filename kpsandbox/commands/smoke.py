"""`kpsandbox smoke`: prove the running sandbox works end to end in a few seconds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import typer

from infra.db import database_answers
from infra.errors import SandboxError
from infra.roundtrip import round_trip
from kpsandbox.console import console, settings
from schemas.events import dump_event
from schemas.payments import PaymentRequested

SMOKE_MESSAGES = 10


def _payment(index: int) -> bytes:
    return dump_event(
        PaymentRequested(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            producer="kpsandbox-smoke",
            correlation_id=uuid.uuid4(),
            kind="p2p",
            rail="raast",
            payer_account_id=f"smk_{index:016x}",
            payee_account_id=f"smk_{index + 1:016x}",
            amount=100 * (index + 1),
        )
    )


def smoke(
    messages: int = typer.Option(SMOKE_MESSAGES, min=1, max=10_000, help="How many to round-trip."),
) -> None:
    """Round-trip payment events through Kafka with a committed consumer group; check PostgreSQL."""
    config = settings()
    version = database_answers(config.dsn)
    if version is None:
        raise SandboxError(f"PostgreSQL at {config.dsn} does not answer", "run `kpsandbox up` first")
    # A smoke topic of its own, so the catalog topics only ever carry real traffic.
    topic = f"{config.topic_prefix}kp.smoke.v1"
    result = asyncio.run(
        round_trip(config, topic, [_payment(i) for i in range(messages)], f"kpsandbox-smoke-{uuid.uuid4().hex[:8]}")
    )
    if not result.matched:
        raise SandboxError(
            f"sent {result.sent} events to {topic} but received {result.received} back in order",
            "check `kpsandbox status` and the Kafka log in the state folder",
        )
    console.print(
        f"[green]ok[/]: {result.sent} events round-tripped through {topic} in {result.seconds:.2f} s "
        f"(group committed up to offset {result.committed_offset_total}); {version} answers"
    )


def register(app: typer.Typer) -> None:
    """Adds `smoke`."""
    app.command()(smoke)
