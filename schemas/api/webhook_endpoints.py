"""`/v1/webhook_endpoints`: where a tenant's webhook events are POSTed, and with which secret (issue 10, item 1).

An endpoint is a URL, the event types it wants (schemas/webhooks.py) and a signing secret
(`whsec_…`). The secret is answered in full twice only: by the create and by `rotate_secret`;
every other answer shows `secret_last4`. Status:

    enabled ◄──► disabled   (`{"disabled": true|false}` on update; nothing is delivered while disabled)

The URL is http or https, without user name or password (a signature authenticates a delivery,
not credentials in a URL that would end up in logs), without a fragment (never sent to a server)
and at most URL_CHARS_MAX characters. Whether it answers is NOT checked here: the sandbox runs
offline and receivers often start after their endpoint is made, so a delivery records the failure
instead. Plain http and local addresses are allowed on purpose: receivers in a sandbox run on
`localhost`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.webhooks import WEBHOOK_EVENT_TYPES, WebhookEventType

WEBHOOK_ENDPOINT_ID_PREFIX: Final = "we_"
URL_CHARS_MAX: Final = 2048
URL_SCHEMES: Final = ("http", "https")
SECRET_SHOWN_CHARS: Final = 4
ROTATION_OVERLAP_HOURS: Final = 24

WebhookEndpointId = str
WebhookEndpointStatus = Literal["enabled", "disabled"]


def check_webhook_url(url: str) -> str:
    """`url` when it can be a webhook endpoint; a ValueError saying what to change otherwise."""
    if len(url) > URL_CHARS_MAX:
        raise ValueError(f"a webhook URL is at most {URL_CHARS_MAX} characters; use a shorter path")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValueError("a webhook URL has no spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number in 0–65535
    except ValueError:
        raise ValueError("not a URL: write it as http(s)://host[:port]/path") from None
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ValueError("a webhook URL starts with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook URL carries no user name or password; verify the signature instead")
    if not parts.hostname:
        raise ValueError("a webhook URL names a host: http(s)://host[:port]/path")
    if parts.fragment or url.endswith("#"):
        raise ValueError("a webhook URL has no '#fragment': it is never sent to the server")
    return url


def unique_events(events: list[WebhookEventType]) -> list[WebhookEventType]:
    """The event types once each, in the order first named."""
    return list(dict.fromkeys(events))


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=URL_CHARS_MAX,
        description=f"http(s) URL the events are POSTed to, at most {URL_CHARS_MAX} characters, no credentials.",
        examples=["http://localhost:4242/webhooks"],
    ),
    AfterValidator(check_webhook_url),
]
WebhookEvents = Annotated[
    list[WebhookEventType],
    Field(
        min_length=1,
        max_length=len(WEBHOOK_EVENT_TYPES),
        description="The event types to receive (at least one): " + ", ".join(WEBHOOK_EVENT_TYPES) + ".",
    ),
    AfterValidator(unique_events),
]


class WebhookEndpointCreate(BaseModel):
    """A new endpoint: the URL events go to and the types it wants."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"url": "http://localhost:4242/webhooks", "events": ["payment.succeeded", "payment.failed"]}]
        },
    )

    url: WebhookUrl
    events: WebhookEvents


class WebhookEndpointUpdate(BaseModel):
    """Changes to an endpoint; what is left out stays as it is."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"disabled": True}, {"events": ["refund.failed"]}]}
    )

    url: WebhookUrl | None = None
    events: WebhookEvents | None = None
    disabled: bool | None = Field(default=None, description="true: stop delivering to it; false: deliver again.")


class WebhookEndpoint(BaseModel):
    """One of the tenant's webhook endpoints, without its secret."""

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: WebhookEndpointId = Field(description="The endpoint's id, e.g. 'we_3f9c…'.")
    url: str
    events: list[WebhookEventType]
    status: WebhookEndpointStatus
    secret_last4: str = Field(description="The last 4 characters of the signing secret, to tell secrets apart.")
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret also signs every delivery; null otherwise."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint with its signing secret in full: answered by the create and by `rotate_secret` only."""

    secret: str = Field(
        description="The signing secret, `whsec_…`: keep it; it is not shown again (Standard Webhooks, HMAC-SHA256)."
    )


class WebhookEndpointList(BaseModel):
    """A page of your webhook endpoints, newest first."""

    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


class WebhookEndpointDeleted(BaseModel):
    """The answer to a delete: the endpoint is gone, nothing more is delivered to it."""

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: WebhookEndpointId
    deleted: Literal[True] = True
