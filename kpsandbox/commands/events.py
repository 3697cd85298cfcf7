"""`kpsandbox events list|resend`: your webhook events, read and resent through the HTTP API."""

from __future__ import annotations

import asyncio
from typing import Final

import typer
from rich.table import Table

from kpsandbox.commands.api_options import API_KEY_OPTION, API_URL_OPTION, api_client
from kpsandbox.console import console
from schemas.api.events import EventList, WebhookDeliveryList
from schemas.api.listings import LIMIT_DEFAULT, LIMIT_MAX
from schemas.webhooks import WEBHOOK_EVENT_TYPES

TYPES_HELP: Final = "Only events of this type: " + ", ".join(WEBHOOK_EVENT_TYPES) + "."

events_app = typer.Typer(
    help="Your webhook events (what was sent, or is being sent, to your endpoints), through the HTTP API.",
    no_args_is_help=True,
)


def _print_events(page: EventList) -> None:
    table = Table(title="events, newest first", title_justify="left")
    for column in ("id", "type", "object", "status", "created"):
        table.add_column(column, no_wrap=True)
    for event in page.data:
        data = event.data
        table.add_row(event.id, event.type, str(data.get("id", "-")), str(data.get("status", "-")),
                      event.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    console.print(table)
    if page.has_more:
        console.print(f"more: --starting-after {page.next_cursor}", markup=False, soft_wrap=True)


@events_app.command("list")
def list_events(
    type: str | None = typer.Option(None, "--type", help=TYPES_HELP),
    limit: int = typer.Option(LIMIT_DEFAULT, "--limit", min=1, max=LIMIT_MAX, help="How many, newest first."),
    starting_after: str | None = typer.Option(None, "--starting-after", help="The cursor the last page printed."),
    api_key: str = API_KEY_OPTION,
    api_url: str | None = API_URL_OPTION,
) -> None:
    """List your events, newest first: id, type, the object it is about and that object's status."""
    if type is not None and type not in WEBHOOK_EVENT_TYPES:
        raise typer.BadParameter(f"{type!r} is not an event type; {TYPES_HELP}", param_hint="--type")

    async def work() -> EventList:
        async with api_client(api_key, api_url) as client:
            return await client.events(type=type, limit=limit, starting_after=starting_after)

    page = asyncio.run(work())
    if not page.data:
        console.print("no events yet — make some with `kpsandbox trigger payment.succeeded`")
        return
    _print_events(page)


@events_app.command("resend")
def resend(
    event_id: str = typer.Argument(..., metavar="ID", help="The event's id (evt_…)."),
    webhook_endpoint: str | None = typer.Option(
        None, "--webhook-endpoint", help="Only to this endpoint (we_…); default: every enabled one subscribed."
    ),
    api_key: str = API_KEY_OPTION,
    api_url: str | None = API_URL_OPTION,
) -> None:
    """Send an event again, with the same webhook-id: new deliveries, shown in the delivery log as resends."""

    async def work() -> WebhookDeliveryList:
        async with api_client(api_key, api_url) as client:
            return await client.resend(event_id, webhook_endpoint)

    queued = asyncio.run(work())
    for delivery in queued.data:
        console.print(
            f"queued delivery {delivery.id} of {delivery.event} ({delivery.event_type}) to {delivery.webhook_endpoint}",
            markup=False,
        )
    console.print(f"see the attempts with GET /v1/events/{event_id}/deliveries", markup=False)


def register(app: typer.Typer) -> None:
    """Adds the `events` group."""
    app.add_typer(events_app, name="events")
