"""`kpsandbox trigger FLOW`: run a real flow through the HTTP API and show the webhooks it caused."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from kpsandbox.commands.api_options import API_KEY_OPTION, API_URL_OPTION, api_client
from kpsandbox.console import console, err_console
from producers.triggers import FLOWS, TriggerResult, parse_overrides, run_trigger


def print_flows() -> None:
    """The table `trigger --list` prints."""
    table = Table(title="trigger flows", title_justify="left")
    for column in ("flow", "what it does", "--override sets", "events expected"):
        table.add_column(column)
    for flow in FLOWS:
        table.add_row(flow.name, flow.description, flow.overrides, ", ".join(flow.expects))
    console.print(table)


def _print_result(result: TriggerResult) -> None:
    made = Table(title=f"{result.flow.name}: objects made", title_justify="left")
    for column in ("object", "id", "status", "amount"):
        made.add_column(column, no_wrap=True)
    for thing in result.made:
        made.add_row(thing.object, thing.id, thing.status, str(getattr(thing, "amount", "-")))
    console.print(made)
    events = Table(title="events that followed, oldest first", title_justify="left")
    for column in ("event", "type", "object", "status"):
        events.add_column(column, no_wrap=True)
    for event in result.events:
        events.add_row(event.id, event.type, str(event.data.get("id")), str(event.data.get("status")))
    console.print(events)


def trigger(
    flow: str | None = typer.Argument(None, metavar="FLOW", help="A flow's name (see --list)."),
    list_flows: bool = typer.Option(False, "--list", help="Show the flows and exit."),
    override: list[str] = typer.Option(
        [], "--override", metavar="KEY=VALUE", help="Set a field of the flow's main request, e.g. amount=5000."
    ),
    api_key: str = API_KEY_OPTION,
    api_url: str | None = API_URL_OPTION,
) -> None:
    """Run a real flow through the HTTP API (accounts, top-ups, payments, refunds, requests-to-pay) and
    print what it made and the webhook events that followed. Needs the whole sandbox: `kpsandbox serve`."""
    if list_flows or flow is None:
        print_flows()
        return
    overrides = parse_overrides(override)

    async def work() -> TriggerResult:
        async with api_client(api_key, api_url) as client:
            return await run_trigger(client, flow, overrides)

    result = asyncio.run(work())
    _print_result(result)
    if result.missing:
        err_console.print(
            f"[yellow]not seen yet:[/] {', '.join(result.missing)} — is the views consumer running (`kpsandbox serve`)?"
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Adds `trigger`."""
    app.command()(trigger)
