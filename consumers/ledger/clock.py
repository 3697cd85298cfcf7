"""The ledger's clock rules, pure: whose timestamps count, and how far ahead a request may be dated.

One clock per (source partition, producer): a producer's accepted requests move only its own
clock, and a pending transfer expires by the clock of the producer that asked for it. A request
dated more than `CLOCK_SKEW_MAX` ahead of both its producer's clock and the wall clock (`now`,
read once per batch and passed in) is refused as `invalid_timestamp`. docs/ledger.md, "The clock".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from schemas.topics import TENANT_ID_PATTERN

if TYPE_CHECKING:
    from consumers.ledger.records import Request

# How far ahead of its producer's clock (on one partition) and of the wall clock a request may be
# dated: wider than any quiet spell of a small simulation's partition, far too narrow for a wrong
# century. A producer on wall-clock time that pauses for months is always within the wall clock.
CLOCK_SKEW_MAX: Final = timedelta(days=30)

ClockKey = tuple[int, str]  # (source partition, producer)
TENANT_CLOCK: Final = re.compile(TENANT_ID_PATTERN)


def clock_key(request: Request) -> ClockKey:
    """Whose clock a request moves: its producer's on its partition. A tenant's producers are
    namespaced by the tenant, so a tenant naming its producer "sim" never moves the economy's clock."""
    producer = request.event.producer
    return (request.partition, producer if request.tenant is None else f"{request.tenant}/{producer}")


def clock_tenant(producer: str) -> str | None:
    """The tenant whose clock key this is (see clock_key), or None for the trusted producers'."""
    tenant, slash, _ = producer.partition("/")
    return tenant if slash and TENANT_CLOCK.fullmatch(tenant) else None


def timely(at: datetime, clock: datetime | None, now: datetime) -> bool:
    """False for a request dated more than `CLOCK_SKEW_MAX` ahead of its producer's clock and of `now`."""
    return clock is None or at - clock <= CLOCK_SKEW_MAX or at - now <= CLOCK_SKEW_MAX


def reachable_clocks(
    requests: Iterable[Request], stored: dict[ClockKey, datetime], now: datetime
) -> dict[ClockKey, datetime]:
    """The furthest each (partition, producer) clock can get in a batch, by the rule `decide` applies.

    Bounds which pending transfers a batch must load to expire them.
    """
    clocks = dict(stored)
    for request in requests:
        event = request.event
        key = clock_key(request)
        clock = clocks.get(key)
        if (clock is None or event.occurred_at > clock) and timely(event.occurred_at, clock, now):
            clocks[key] = event.occurred_at
    return clocks
