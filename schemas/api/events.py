"""The API's view of webhook events and their delivery log (issue 10, items 3 and 5).

An event is the `WebhookEvent` a receiver gets (schemas/webhooks.py), read back with
`GET /v1/events/{id}`. A delivery is that event on its way to one endpoint: `pending` (due at
`next_attempt_at`), then `delivered` (a 2xx) or `failed` (410 Gone, or every retry of
KPSANDBOX_WEBHOOK_RETRY_SCHEDULE used up). Its `attempts` are every POST made, oldest first.

A delivery's `origin` says why it exists: `event` (made with the event, one per subscribed
endpoint), `resend` (POST /v1/events/{id}/resend) or `replay` (POST
/v1/webhook_endpoints/{id}/replay). A resend or replay is a new delivery of the same event: its
`webhook-id` is the event's id, as on the first delivery, so a receiver that saw it deduplicates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.webhooks import WebhookEvent, WebhookEventType

WebhookDeliveryStatus = Literal["pending", "delivered", "failed"]
WebhookDeliveryOrigin = Literal["event", "resend", "replay"]
REPLAY_EVENTS_MAX: Final = 500  # events one replay call backfills; `has_more` says when more remain


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
    origin: WebhookDeliveryOrigin = Field(
        description="`event`: sent because the event happened; `resend` or `replay`: asked for through the API."
    )
    next_attempt_at: datetime | None = Field(description="When the next attempt is due; null once delivered or failed.")
    attempts: list[WebhookAttempt]
    created_at: datetime


class WebhookDeliveryList(BaseModel):
    """Deliveries, newest first (at most `limit`)."""

    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    has_more: bool


class EventResend(BaseModel):
    """Sends an event again: to one endpoint of yours, or (empty body) to every enabled endpoint
    subscribed to its type."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"webhook_endpoint": "we_" + "1" * 32}]})

    webhook_endpoint: str | None = Field(
        default=None, description="Only this endpoint (enabled, yours; subscribed to the type or not)."
    )


class WebhookReplayCreate(BaseModel):
    """Backfills an endpoint after an outage: every event of its types since `since`, oldest first."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"since": "2025-01-01T09:00:00Z"}]})

    since: AwareDatetime = Field(description="Events created at or after this time (RFC 3339, with an offset).")
    starting_after: str | None = Field(
        default=None,
        description="The previous answer's `last_event`, to continue a replay that answered `has_more`.",
    )


class WebhookReplay(BaseModel):
    """What a replay queued: one new delivery (`origin: replay`) per event, at most REPLAY_EVENTS_MAX."""

    object: Literal["webhook_replay"] = "webhook_replay"
    webhook_endpoint: str
    since: datetime
    deliveries_created: int = Field(description=f"New deliveries queued by this call (at most {REPLAY_EVENTS_MAX}).")
    last_event: str | None = Field(description="The newest event replayed; null when there was none.")
    has_more: bool = Field(
        description="More events remain: call again with the same `since` and `starting_after` = `last_event`."
    )
