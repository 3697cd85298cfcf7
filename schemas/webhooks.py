"""Webhooks as a receiver sees them (issue 10, items 2 and 3): the event types and the event envelope.

This is the contract between the sandbox and a startup's webhook handler. The endpoints API
(producers/api/webhook_endpoints.py) validates subscriptions against `WEBHOOK_EVENT_TYPES`; the
dispatcher (consumers/webhooks/, later) builds one `WebhookEvent` per thing that happened and POSTs
its JSON, signed as consumers/webhooks/signing.py says (Standard Webhooks), to every enabled
endpoint of the tenant that subscribed to its type.

An event type is `<object>.<what happened>`, the object named as the API names it (`payment`,
`refund`, `payment_request`, `account`, `top_up`) and the verb as that object's `status` reads
once it happened, so a handler can switch on `type` and trust `data.status` to agree:

    payment.succeeded | failed | requires_capture | canceled | expired | refunded
    refund.succeeded | failed
    payment_request.created | approved | declined | expired
    account.opened
    top_up.succeeded

`payment.refunded` is sent when a refund of the payment succeeds (the payment itself stays
`succeeded`; `data.amount_refunded` says how much came back). The envelope's `id` is also the
`webhook-id` header and never changes across retries of one event: handlers deduplicate on it.

Secrets are Standard Webhooks symmetric secrets: `whsec_` and the base64 of 24 to 64 random bytes
(the spec's bounds); the sandbox makes them of `SECRET_BYTES`. Depends on nothing of ours.
"""

from __future__ import annotations

import base64
from typing import Any, Final, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

WebhookEventType = Literal[
    "payment.succeeded",
    "payment.failed",
    "payment.requires_capture",
    "payment.canceled",
    "payment.expired",
    "payment.refunded",
    "refund.succeeded",
    "refund.failed",
    "payment_request.created",
    "payment_request.approved",
    "payment_request.declined",
    "payment_request.expired",
    "account.opened",
    "top_up.succeeded",
]
WEBHOOK_EVENT_TYPES: Final[tuple[WebhookEventType, ...]] = get_args(WebhookEventType)

EVENT_ID_PREFIX: Final = "evt_"
EVENT_ID_PATTERN: Final = r"^evt_[0-9a-f]{32}$"  # no '.': it is signed as `{webhook-id}.{timestamp}.{body}`

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES_MIN: Final = 24  # the Standard Webhooks specification's bounds for an HMAC-SHA256 secret
SECRET_BYTES_MAX: Final = 64
SECRET_BYTES: Final = 24  # as the reference implementations make them: 32 base64 characters, no padding


def format_secret(raw: bytes) -> str:
    """The secret a receiver is given for these random bytes: `whsec_` + standard base64."""
    if not SECRET_BYTES_MIN <= len(raw) <= SECRET_BYTES_MAX:
        raise ValueError(f"a webhook secret has {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, not {len(raw)}")
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


class WebhookEvent(BaseModel):
    """The JSON body of one webhook delivery: what happened (`type`), when, and to what (`data`)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "object": "event",
                    "id": "evt_" + "5" * 32,
                    "type": "payment.succeeded",
                    "created_at": "2025-01-01T09:30:00Z",
                    "data": {"object": "payment", "id": "pay_" + "1" * 32, "status": "succeeded", "amount": 25000},
                }
            ]
        },
    )

    object: Literal["event"] = "event"
    id: str = Field(
        pattern=EVENT_ID_PATTERN,
        description="'evt_' + 32 hex digits; also the `webhook-id` header, the same on every retry: deduplicate on it.",
    )
    type: WebhookEventType = Field(description="What happened, as `<object>.<status it reached>`.")
    created_at: AwareDatetime = Field(description="When it happened (not when this delivery was attempted).")
    data: dict[str, Any] = Field(
        description="The object the event is about, as the API's GET of that object answers at that moment."
    )
