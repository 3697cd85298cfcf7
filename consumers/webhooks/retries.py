"""What one delivery attempt's answer means for the delivery and its endpoint. Pure: no I/O, no clock.

    pending ──2xx──────────────────────────────▶ delivered
       │ ──410 Gone─────────────────────────────▶ failed, and the endpoint is disabled
       │ ──anything else (3xx, 4xx, 5xx, timeout, refused connection):
       │      a retry left in the schedule ─────▶ pending, due `delays_s[attempt - 1]` seconds later
       │      none left ────────────────────────▶ failed

A 3xx is a failure: redirects are not followed, so a receiver cannot send a signed event elsewhere.
The schedule (`KPSANDBOX_WEBHOOK_RETRY_SCHEDULE`, infra/settings.py) holds one delay per retry, so a
delivery is attempted at most `len(delays_s) + 1` times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

DeliveryStatus = Literal["pending", "delivered", "failed"]

GONE = 410


@dataclass(frozen=True, slots=True)
class Decision:
    """The delivery's next status, when it is due again (pending only), and whether to disable its endpoint."""

    status: DeliveryStatus
    next_attempt_at: datetime | None = None
    disable_endpoint: bool = False


def decide(*, response_status: int | None, attempt: int, delays_s: Sequence[int], now: datetime) -> Decision:
    """The decision after attempt number `attempt` (1 = the first) answered `response_status`
    (None: no HTTP answer — a timeout, a refused connection, a bad URL)."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    if response_status is not None and 200 <= response_status <= 299:
        return Decision("delivered")
    if response_status == GONE:
        return Decision("failed", disable_endpoint=True)
    if attempt <= len(delays_s):
        return Decision("pending", next_attempt_at=now + timedelta(seconds=delays_s[attempt - 1]))
    return Decision("failed")
