"""Request values for the ledger's unit tests: a valid payment.requested as the producers write it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from schemas.events import dump_event
from schemas.payments import PaymentRequested

START = datetime(2026, 1, 1, tzinfo=UTC)


def payment_value(*, occurred_at: datetime = START, **overrides: object) -> bytes:
    """A payment.requested's JSON (p2p, 100 paisa, acc_00000001 → acc_00000002), with any field
    of the document replaced by `overrides` (also with values the contract refuses)."""
    event = PaymentRequested(
        event_id=uuid4(),
        occurred_at=occurred_at,
        producer="test",
        correlation_id=uuid4(),
        kind="p2p",
        rail="raast",
        payer_account_id="acc_00000001",
        payee_account_id="acc_00000002",
        amount=100,
    )
    document = json.loads(dump_event(event))
    document.update(overrides)
    return json.dumps(document).encode()
