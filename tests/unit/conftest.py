"""Unit tests see the documented defaults, whatever KPSANDBOX_* variables the shell has set."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_sandbox_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removes every KPSANDBOX_* variable for the duration of one unit test."""
    for name in list(os.environ):
        if name.startswith("KPSANDBOX_"):
            monkeypatch.delenv(name)
