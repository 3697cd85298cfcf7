"""The `kpsandbox` command: a thin layer wiring infra, producers and consumers together.

Every user-fixable failure arrives here as a SandboxError (or a settings ValidationError) and
is printed as what went wrong plus what to do, with exit status 2 — never a traceback.
"""

from __future__ import annotations

import inspect
import sys

import typer
from pydantic import ValidationError

from infra.errors import SandboxError
from infra.settings import SECRET_SETTINGS
from kpsandbox.commands import (
    archive,
    deadletters,
    demo,
    events,
    export,
    fixtures,
    ledger,
    listen,
    metrics,
    replay,
    schemas,
    serve,
    services,
    simulate,
    smoke,
    study,
    tenants,
    topics,
    trigger,
)
from kpsandbox.console import err_console

app = typer.Typer(
    name="kpsandbox",
    help=(
        "Digital KP payments sandbox: simulated citizens and merchants emit payment events onto "
        "Apache Kafka; consumers settle a double-entry ledger in PostgreSQL and export "
        "cash-to-digital metrics to Prometheus. Settings come from KPSANDBOX_* environment "
        "variables (see README)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (
    services,
    serve,
    topics,
    schemas,
    simulate,
    study,
    export,
    ledger,
    deadletters,
    metrics,
    archive,
    replay,
    smoke,
    demo,
    tenants,
    events,
    trigger,
    listen,
    fixtures,
):
    module.register(app)


def _one_line_summaries(typer_app: typer.Typer) -> None:
    """Gives every command without a short help its docstring's first paragraph as one line. Typer's
    rich help keeps a docstring's own line breaks in the command lists, so `status`'s summary broke
    after "and the" however wide the terminal (its own `--help` page already joins them)."""
    for command in typer_app.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback else None)
        if command.short_help is None and text:
            command.short_help = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(app)


def _settings_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        if not field:  # a rule across settings: its input is every setting (secrets too); the message names them
            lines.append(problem["msg"])
        elif field in SECRET_SETTINGS:
            lines.append(f"KPSANDBOX_{field.upper()}: {problem['msg']}")
        else:
            lines.append(f"KPSANDBOX_{field.upper()}={problem.get('input')!r}: {problem['msg']}")
    return "; ".join(lines)


def main() -> None:
    """Entry point: runs the app and turns expected failures into two readable lines."""
    try:
        app()
    except SandboxError as error:
        err_console.print(f"[red]error:[/] {error.message}")
        err_console.print(f"[yellow]what to do:[/] {error.hint}")
        sys.exit(2)
    except ValidationError as error:
        if error.title != "Settings":
            raise
        err_console.print(f"[red]error:[/] invalid setting — {_settings_error(error)}")
        err_console.print("[yellow]what to do:[/] fix or unset that environment variable (see README, Settings)")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
