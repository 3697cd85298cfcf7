"""The API's bind host and port are settings with documented defaults, checked like the exporters'."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import Settings


def test_api_listens_on_loopback_8080_by_default() -> None:
    """Unset, the API binds 127.0.0.1:8080; KPSANDBOX_API_HOST and KPSANDBOX_API_PORT change that."""
    assert (Settings().api_host, Settings().api_port) == ("127.0.0.1", 8080)


def test_api_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """KPSANDBOX_API_HOST / KPSANDBOX_API_PORT are read like every other setting."""
    monkeypatch.setenv("KPSANDBOX_API_HOST", "0.0.0.0")
    monkeypatch.setenv("KPSANDBOX_API_PORT", "18080")
    assert (Settings().api_host, Settings().api_port) == ("0.0.0.0", 18080)


def test_bad_api_settings_are_refused() -> None:
    """A host with a scheme, a privileged or out-of-range port, or an exporter's port is a validation error."""
    for bad in (
        {"api_host": "http://x"},
        {"api_port": 80},
        {"api_port": 70_000},
        {"api_port": 9464},
        {"api_port": 9465},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)  # type: ignore[arg-type]
