"""The API's view of webhook events and their delivery log (issue 10, items 3 and 5).

An event is the `WebhookEvent` a receiver gets (schemas/webhooks.py), read back with
`GET /v1/events/{id}`. A delivery is that event on its way to one endpoint: `pending` (due at
`next_attempt_at`), then `delivered` (a 2xx) or `failed` (410 Gone, or every retry of
KPSANDBOX_WEBHOOK_RETRY_SCHEDULE used up). Its `attempts` are every POST made, oldest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.webhooks import WebhookEvent, WebhookEventType

WebhookDeliveryStatus = Literal["pending", "delivered", "failed"]


class EventList(BaseModel):
    """A page of your events, newest first."""

    object: Literal["list"] = "list"
    data: list[WebhookEvent]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


class WebhookAttempt(BaseModel):
    """One POST of a delivery and what came back."""

    attempt: int = Field(description="1 for the first POST, then one more per retry.")
    response_status: int | None = Field(description="The receiver's HTTP status; null when it did not answer.")
    error: str | None = Field(description="Why there was no answer (timeout, refused connection); null otherwise.")
    latency_ms: int = Field(description="From sending the request to the end of reading the answer's first bytes.")
    response_head: str = Field(description="The first 512 bytes of the answer's body (UTF-8, invalid bytes replaced).")
    attempted_at: datetime


class WebhookDelivery(BaseModel):
    """One event on its way to one endpoint, with every attempt so far."""

    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: int
    event: str = Field(description="The event's id (also the `webhook-id` header of every attempt).")
    event_type: WebhookEventType
    webhook_endpoint: str = Field(description="The endpoint's id.")
    status: WebhookDeliveryStatus
    next_attempt_at: datetime | None = Field(description="When the next attempt is due; null once delivered or failed.")
    attempts: list[WebhookAttempt]
    created_at: datetime


class WebhookDeliveryList(BaseModel):
    """Deliveries, newest first (at most `limit`)."""

    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    has_more: bool
