"""Webhook endpoints' pure rules: which URLs and event lists a create or update accepts
(schemas/api/webhook_endpoints.py), the event envelope (schemas/webhooks.py), and secrets sealed at rest
(infra/sealed_secrets.py): readable with the deployment key and for their own endpoint only."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from pydantic import ValidationError

from infra.sealed_secrets import NONCE_BYTES, seal, unseal
from producers.api.webhook_endpoints import new_secret
from schemas.api.webhook_endpoints import (
    URL_CHARS_MAX,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    check_webhook_url,
)
from schemas.webhooks import WEBHOOK_EVENT_TYPES, WebhookEvent, format_secret

KEY: Final = bytes(range(32))
ENDPOINT: Final = "we_" + "1" * 32


def _json(fields: dict[str, Any]) -> str:
    return json.dumps({"url": "http://localhost:4242/hooks", "events": ["payment.succeeded"], **fields})


def _create(**fields: Any) -> WebhookEndpointCreate:
    return WebhookEndpointCreate.model_validate_json(_json(fields))


def _errors(**fields: Any) -> list[Any]:
    with pytest.raises(ValidationError) as refused:
        WebhookEndpointCreate.model_validate_json(_json(fields))
    return refused.value.errors()


def test_the_event_vocabulary_is_the_one_issue_10_names() -> None:
    """Fourteen `<object>.<status>` types, each once, the tuple built from the Literal."""
    assert len(WEBHOOK_EVENT_TYPES) == len(set(WEBHOOK_EVENT_TYPES)) == 14
    assert {event.split(".")[0] for event in WEBHOOK_EVENT_TYPES} == {
        "payment",
        "refund",
        "payment_request",
        "account",
        "top_up",
    }
    assert "payment.requires_capture" in WEBHOOK_EVENT_TYPES and "top_up.succeeded" in WEBHOOK_EVENT_TYPES


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:4242/hooks",
        "https://example.com/webhooks?source=kpsandbox",
        "HTTPS://EXAMPLE.COM",
        "http://127.0.0.1:8000/",
        "http://[::1]:9000/hook",
        "https://example.com/" + "p" * (URL_CHARS_MAX - len("https://example.com/")),
    ],
)
def test_http_and_https_urls_are_accepted_as_given(url: str) -> None:
    """http(s) with a host, local addresses included (sandbox receivers run on localhost), kept verbatim."""
    assert check_webhook_url(url) == url
    assert _create(url=url).url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("localhost:4242/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://user:pass@example.com/hook", "no user name or password"),
        ("https://token@example.com/hook", "no user name or password"),
        ("https:///hook", "names a host"),
        ("https://example.com/hook#part", "fragment"),
        ("https://example.com:99999/hook", "not a URL"),
        ("https://exa mple.com/hook", "no spaces"),
        ("https://example.com/\nhook", "no spaces"),
        ("https://example.com/" + "p" * URL_CHARS_MAX, "at most 2048"),
    ],
)
def test_other_urls_are_refused_naming_the_fix(url: str, why: str) -> None:
    """Not http(s), credentials, no host, a fragment, a bad port, spaces, over 2 048 characters: a
    ValueError that says what to change, reported by the model on `url`."""
    with pytest.raises(ValueError, match=why):
        check_webhook_url(url)
    assert [error["loc"] for error in _errors(url=url)] == [("url",)]


def test_events_must_be_known_and_at_least_one() -> None:
    """An unknown event type names its place in `events`; an empty list is refused; duplicates are
    kept once, in the order first named."""
    unknown = _errors(events=["payment.succeeded", "payment.exploded"])
    assert [error["loc"] for error in unknown] == [("events", 1)]
    assert "payment.succeeded" in unknown[0]["msg"]  # the message lists the known types
    assert [error["loc"] for error in _errors(events=[])] == [("events",)]
    assert [error["loc"] for error in _errors(events="payment.succeeded")] == [("events",)]
    assert _create(events=["refund.failed", "account.opened", "refund.failed"]).events == [
        "refund.failed",
        "account.opened",
    ]
    assert _create(events=list(WEBHOOK_EVENT_TYPES)).events == list(WEBHOOK_EVENT_TYPES)


def test_an_update_takes_any_subset_and_nothing_else() -> None:
    """Every field is optional, validated as on create; `disabled` is a JSON boolean; unknown fields refused."""
    assert WebhookEndpointUpdate.model_validate_json("{}") == WebhookEndpointUpdate()
    assert WebhookEndpointUpdate.model_validate_json('{"disabled": true}').disabled is True
    for body in ('{"disabled": "yes"}', '{"url": "ftp://x"}', '{"events": []}', '{"secret": "whsec_x"}'):
        with pytest.raises(ValidationError):
            WebhookEndpointUpdate.model_validate_json(body)


def test_the_event_envelope_names_its_id_type_time_and_object() -> None:
    """An event is `evt_` + 32 hex, a known type, an aware time and the object it is about."""
    event = WebhookEvent.model_validate(
        {
            "id": "evt_" + "0" * 32,
            "type": "refund.succeeded",
            "created_at": "2025-01-01T09:30:00Z",
            "data": {"object": "refund", "id": "re_" + "1" * 32},
        }
    )
    assert event.object == "event" and event.data["object"] == "refund"
    for wrong in ({"id": "evt_1.2"}, {"type": "refund.exploded"}, {"created_at": "2025-01-01T09:30:00"}):
        with pytest.raises(ValidationError):
            WebhookEvent.model_validate({**event.model_dump(), **wrong})


def test_new_secrets_are_fresh_and_whsec() -> None:
    """Each endpoint gets its own random secret in the Standard Webhooks form."""
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_") and len(first) == len(format_secret(b"k" * 24))


def test_a_sealed_secret_opens_only_with_its_key_and_for_its_endpoint() -> None:
    """Sealing hides the secret, uses a fresh nonce each time, and opens only under the same deployment
    key and endpoint id; an altered byte does not open."""
    secret = new_secret()
    sealed = seal(KEY, secret, bound_to=ENDPOINT)
    assert secret.encode() not in sealed and secret[6:].encode() not in sealed
    assert sealed != seal(KEY, secret, bound_to=ENDPOINT) and len(sealed) == NONCE_BYTES + len(secret) + 16
    assert unseal(KEY, sealed, bound_to=ENDPOINT) == secret
    with pytest.raises(ValueError, match="rotate the endpoint's secret"):
        unseal(bytes(32), sealed, bound_to=ENDPOINT)
    with pytest.raises(ValueError):
        unseal(KEY, sealed, bound_to="we_" + "2" * 32)
    with pytest.raises(ValueError):
        unseal(KEY, sealed[:-1] + bytes([sealed[-1] ^ 1]), bound_to=ENDPOINT)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        seal(b"short", secret, bound_to=ENDPOINT)
