"""`kpsandbox demo`: the main job on embedded local services."""

from __future__ import annotations

from kpsandbox.commands.services import up
from kpsandbox.commands.smoke import smoke


def demo() -> None:
    """Bring the local services up if needed and prove the pipeline end to end."""
    up()
    smoke(messages=100)


def register(app) -> None:  # type: ignore[no-untyped-def]
    """Adds `demo`."""
    app.command()(demo)
