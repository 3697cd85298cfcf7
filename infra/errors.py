"""User-facing errors: what went wrong and what to do about it.

Anything a user can cause or fix (a bad setting, a busy port, a missing tool) is raised as a
`SandboxError`; the CLI prints it as two short lines and exits with status 2, never a traceback.
Entry points other than the CLI (`python -m consumers.…`) wrap their `main` in `run_main` to
behave the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final, NoReturn, TypeVar

from pydantic import ValidationError

T = TypeVar("T")

EXIT_USER_ERROR: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it
SETTINGS_HINT: Final = "fix or unset that environment variable (see README, Settings)"


class SandboxError(Exception):
    """An error the user can fix. `hint` says how."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}"


def settings_problems(error: ValidationError) -> str:
    """One line naming each bad KPSANDBOX_* variable, its value and what is wrong with it."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        lines.append(f"KPSANDBOX_{field.upper()}={problem.get('input')!r}: {problem['msg']}")
    return "; ".join(lines)


def settings_error(error: ValidationError) -> SandboxError:
    """The SandboxError for a Settings object refused by validation (a bad environment variable)."""
    return SandboxError(f"invalid setting — {settings_problems(error)}", SETTINGS_HINT)


def run_main(main: Callable[[], T]) -> T:
    """Runs an entry point; a SandboxError or an invalid setting is printed as two lines (what went
    wrong, what to do) on stderr with exit status 2, and Ctrl-C as one line with status 130, never
    as a traceback. Any other exception is a bug and keeps its traceback."""
    try:
        return main()
    except SandboxError as error:
        _fail(error)
    except ValidationError as error:
        if error.title != "Settings":
            raise
        _fail(settings_error(error))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _fail(error: SandboxError) -> NoReturn:
    print(f"error: {error.message}\nwhat to do: {error.hint}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR) from None
