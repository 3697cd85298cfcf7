"""Outcome events: what the ledger tells the world about each request it decided.

Written with a string template rather than through the pydantic models: this runs once per
request on the hot path. Every interpolated value is a UUID, an integer, an ISO-8601 time or a
string the contract already constrained to `[a-z0-9_.]` (account ids, kinds, rails, result
codes), so no JSON escaping is needed; a unit test proves every outcome parses back into the
contract's models.
"""

from __future__ import annotations

from typing import Final

from consumers.ledger.domain import Decision
from schemas.payments import outcome_event_id

OUTCOME_PRODUCER: Final = "ledger"


def _text(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def outcome_bytes(decision: Decision) -> tuple[str, bytes]:
    """(Kafka key, JSON value) of the one outcome of a request; the same ids every time.

    `event_id` is derived from the request id and `occurred_at` is the request's simulated time,
    so a republished outcome (outbox redelivery, duplicate request) is recognisably the same one.
    """
    event = decision.request.event
    at = event.occurred_at.isoformat()
    is_payment = event.event_type == "payment.requested"
    kind = _text(event.kind if is_payment else None)  # type: ignore[union-attr]
    rail = _text(event.rail if is_payment else None)  # type: ignore[union-attr]
    if decision.settled:
        event_type = "payment.settled"
        tail = f',"status":"{decision.status}","transfer_id":"{event.event_id}"'
    else:
        event_type = "payment.rejected"
        tail = ""
    value = (
        f'{{"schema_version":1,"event_type":"{event_type}","event_id":"{outcome_event_id(event.event_id)}",'
        f'"occurred_at":"{at}","producer":"{OUTCOME_PRODUCER}","correlation_id":"{event.correlation_id}",'
        f'"request_event_id":"{event.event_id}","request_type":"{event.event_type}","request_occurred_at":"{at}",'
        f'"payer_account_id":"{decision.debit_account_id}","payee_account_id":{_text(decision.credit_account_id)},'
        f'"amount":{decision.amount},"currency":"PKR","kind":{kind},"rail":{rail},"result":"{decision.result}"{tail}}}'
    )
    return decision.debit_account_id, value.encode()
