"""Which archived records a replay sends: a window of simulated time and a set of event types.

The window is half-open, [--from, --to), on the event's `occurred_at`. Accounts are the exception
to --from: an account opened before the window is still replayed (payments inside the window name
it, and the ledger would reject them as `account_not_found` without it). Records that are not
events (dead letters, poison) carry no time or type, so any filter leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from infra.errors import SandboxError
from schemas.events import EVENT_MODELS

ACCOUNT_OPENED: Final = "account.opened"
TIME_HINT: Final = "write times as ISO 8601 in UTC, e.g. 2026-01-15 or 2026-01-15T08:00:00Z"


def parse_time(text: str, option: str) -> datetime:
    """A --from/--to value as an aware UTC datetime (a date alone means its midnight UTC)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SandboxError(f"{option} {text!r} is not a date or time", TIME_HINT) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_types(text: str) -> frozenset[str]:
    """A comma-separated --only list of event types; SandboxError naming any unknown one."""
    wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(wanted - EVENT_MODELS.keys())
    if unknown or not wanted:
        raise SandboxError(
            f"--only names unknown event types: {', '.join(unknown) or '(none given)'}",
            f"choose among: {', '.join(sorted(EVENT_MODELS))}",
        )
    return wanted


@dataclass(frozen=True)
class ReplayFilter:
    """The records to replay; the default replays everything."""

    start: datetime | None = None
    end: datetime | None = None
    only: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise SandboxError(
                f"--from {self.start.isoformat()} is not before --to {self.end.isoformat()}",
                "swap them, or leave one out for an open-ended window",
            )

    @property
    def everything(self) -> bool:
        """True when nothing is filtered out (the fast path: no value is parsed)."""
        return self.start is None and self.end is None and self.only is None

    def keeps(self, event_type: str | None, occurred_at: datetime | None) -> bool:
        """Whether one record passes (its type and time, as read from its value)."""
        if self.everything:
            return True
        if event_type is None or occurred_at is None:
            return False
        if self.only is not None and event_type not in self.only:
            return False
        if self.end is not None and occurred_at >= self.end:
            return False
        return not (self.start is not None and occurred_at < self.start and event_type != ACCOUNT_OPENED)
