"""From one Kafka record to its effect on the metrics state. Pure: no I/O, no clock.

The metrics consumer only reads; a message it cannot read is counted as `unreadable` (the ledger
owns dead-lettering of requests), never a reason to stop.
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from consumers.metrics.aggregate import Aggregator
from schemas.accounts import AccountOpened
from schemas.cash import CashPurchase
from schemas.commerce import OrderPaid, OrderPaidOnDelivery, OrderPlaced
from schemas.deadletter import DeadLetter
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled
from schemas.topics import ACCOUNTS, CASH, DEAD_LETTER, ORDERS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS, TopicSpec

Outcome = Annotated[PaymentSettled | PaymentRejected | PaymentExpired, Field(discriminator="event_type")]
OUTCOME: Final[TypeAdapter[Outcome]] = TypeAdapter(Outcome)
ORDER: Final[TypeAdapter[OrderPlaced | OrderPaid | OrderPaidOnDelivery]] = TypeAdapter(
    OrderPlaced | OrderPaid | OrderPaidOnDelivery
)
# Requests are only needed for their id and Kafka timestamp (settlement latency): no full parse.
EVENT_ID: Final = re.compile(rb'"event_id"\s*:\s*"([0-9a-fA-F-]{36})"')

# Topics in the order one fetched batch is applied: accounts before the payments that name them,
# requests before the outcomes that answer them.
READ_ORDER: Final[tuple[TopicSpec, ...]] = (ACCOUNTS, PAYMENT_REQUESTS, PAYMENT_OUTCOMES, CASH, ORDERS, DEAD_LETTER)


def apply_record(agg: Aggregator, spec: TopicSpec, value: bytes | None, timestamp_ms: int) -> str:
    """Applies one record of a catalog topic; returns `counted`, `duplicate` or `unreadable`.

    An outcome is `duplicate` when its event id was read before or it answers a duplicate request
    (`exists`, `exists_with_…`): see Aggregator.on_outcome."""
    if value is None:
        return "unreadable"
    try:
        if spec is PAYMENT_OUTCOMES:
            return "counted" if agg.on_outcome(OUTCOME.validate_json(value), timestamp_ms) else "duplicate"
        if spec is PAYMENT_REQUESTS:
            match = EVENT_ID.search(value)
            if match is None:
                return "unreadable"
            agg.on_request(UUID(match.group(1).decode()).int, timestamp_ms)
        elif spec is ACCOUNTS:
            agg.on_account(AccountOpened.model_validate_json(value))
        elif spec is CASH:
            agg.on_cash_purchase(CashPurchase.model_validate_json(value))
        elif spec is ORDERS:
            order = ORDER.validate_json(value)
            if not isinstance(order, OrderPaid):
                agg.on_order(order)
        elif spec is DEAD_LETTER:
            agg.on_dead_letter(DeadLetter.model_validate_json(value).reason)
    except (ValidationError, ValueError):
        return "unreadable"
    return "counted"
