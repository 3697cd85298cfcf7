"""What every local service reports, and the small contract each one implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ServiceStatus:
    """One line of `kpsandbox status`."""

    name: str
    endpoint: str
    mode: str  # "embedded" or "external"
    healthy: bool
    version: str
    pid: int | None = None
    rss_bytes: int = 0
    detail: str = ""


class LocalService(Protocol):
    """A service the sandbox can run itself (embedded mode) or merely check (external mode)."""

    name: str

    @property
    def embedded(self) -> bool:
        """True when this sandbox runs the service itself."""
        ...

    @property
    def endpoint(self) -> str:
        """Where clients reach it."""
        ...

    def prepare(self) -> None:
        """One-time work before the first start: fetch, init storage. Idempotent."""
        ...

    def start(self) -> bool:
        """Starts it unless it already runs; True if it was started now. Does not wait."""
        ...

    def wait_healthy(self) -> None:
        """Blocks until healthy or raises SandboxError."""
        ...

    def stop(self) -> bool:
        """Stops what we started; True if something was stopped."""
        ...

    def status(self) -> ServiceStatus:
        """Endpoint, health and version, without side effects."""
        ...
