"""`kpsandbox fixtures FILE.toml`: run a scenario file's steps through the HTTP API (producers/fixtures.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from kpsandbox.commands.api_options import API_KEY_OPTION, API_URL_OPTION, api_client
from kpsandbox.console import console, err_console
from producers.fixtures import StepResult, load_fixture, run_fixture


def describe(result: StepResult) -> str:
    """One line per step: its number, action and name, then the object it made or read."""
    step, thing = result.step, result.thing
    head = f"step {step.number:>2} {step.action}" + (f" {step.name}" if step.name else "")
    if thing is None:
        return head
    amount = getattr(thing, "amount", None)
    text = f"{head}: {thing.object} {thing.id} {getattr(thing, 'status', '')}"
    if amount is not None:
        text += f" amount {amount}"
    frozen = getattr(thing, "frozen_time", None)
    if frozen is not None:
        text += f" at {frozen.isoformat()}"
    if step.action == "expect":
        checks = ", ".join(f"{k}={v!r}" for k, v in step.fields.items() if k not in ("object", "within_s"))
        text = f"{text} [{checks}] — {'ok' if result.ok else 'FAILED: ' + result.detail}"
    return text


def fixtures(
    files: list[Path] = typer.Argument(..., metavar="FILE.toml…", help="Fixture files, run one after another."),
    api_key: str = API_KEY_OPTION,
    api_url: str | None = API_URL_OPTION,
) -> None:
    """Run fixture files: steps that open accounts, top up, pay, capture, refund, ask for payments,
    move test clocks and expect statuses — through the HTTP API, in order. Every file is checked
    before any runs. Exits 1 when an expectation does not hold. The format: docs/webhooks.md, "Fixtures"."""
    loaded = [(path, load_fixture(path)) for path in files]

    def report(result: StepResult) -> None:
        console.print(describe(result), markup=False, soft_wrap=True, style=None if result.ok else "red")

    async def work() -> bool:
        async with api_client(api_key, api_url) as client:
            for path, fixture in loaded:
                console.print(f"{path}" + (f": {fixture.title}" if fixture.title else ""), markup=False)
                results = await run_fixture(client, fixture, report)
                if not results[-1].ok:
                    skipped = len(fixture.steps) - len(results)
                    err_console.print(f"{path}: an expectation failed; {skipped} later step(s) not run", markup=False)
                    return False
        return True

    if not asyncio.run(work()):
        raise typer.Exit(1)
    console.print(f"all expectations held ({len(loaded)} file(s))", markup=False)


def register(app: typer.Typer) -> None:
    """Adds `fixtures`."""
    app.command()(fixtures)
