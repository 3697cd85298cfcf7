"""User-facing errors: what went wrong and what to do about it.

Anything a user can cause or fix (a bad setting, a busy port, a missing tool) is raised as a
`SandboxError`; the CLI prints it as two short lines and exits with status 2, never a traceback.
"""

from __future__ import annotations


class SandboxError(Exception):
    """An error the user can fix. `hint` says how."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}"
