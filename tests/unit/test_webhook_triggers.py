"""The pure parts of issue 10's resend/replay and developer CLI: trigger flows, overrides, the API
client's errors, the once-per-object event list, and the bounds the API's docs name."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from infra.errors import SandboxError
from infra.webhook_events import ONCE_PER_OBJECT
from kpsandbox.cli import app
from producers.api.routers.webhook_endpoints import replay_webhook_endpoint
from producers.api_client import ApiClient, api_base_url
from producers.triggers import FLOWS, build, flow_named, missing_types, parse_overrides
from schemas.api.events import REPLAY_EVENTS_MAX
from schemas.api.payments import PaymentCreate
from schemas.webhooks import WEBHOOK_EVENT_TYPES, WebhookEvent
from tests.conftest import REPO_ROOT


def test_overrides_are_json_when_they_parse_and_text_otherwise() -> None:
    """amount=5000 is the integer 5000; capture_method=manual stays text; a pair without '=' is refused."""
    assert parse_overrides(["amount=5000", "capture_method=manual", "reference=a=b"]) == {
        "amount": 5000,
        "capture_method": "manual",
        "reference": "a=b",
    }
    with pytest.raises(SandboxError, match="key=value"):
        parse_overrides(["amount"])


def test_an_override_the_api_model_refuses_is_a_clear_error() -> None:
    """An unknown field or a string amount is refused by the API's own model, naming the field."""
    defaults = {"payer": "acc_" + "1" * 32, "payee": "acc_" + "2" * 32, "amount": 100}
    assert build(PaymentCreate, defaults, {"amount": 5000}).amount == 5000
    with pytest.raises(SandboxError, match="colour"):
        build(PaymentCreate, defaults, {"colour": "red"})
    with pytest.raises(SandboxError, match="amount"):
        build(PaymentCreate, defaults, {"amount": "5000"})


def test_every_flow_expects_known_event_types_and_the_issue_names_are_there() -> None:
    """The flows issue 10 names exist, and each expects only event types of schemas/webhooks.py."""
    names = {flow.name for flow in FLOWS}
    assert {
        "payment.succeeded",
        "payment.failed.insufficient_funds",
        "payment.expired",
        "refund.succeeded",
        "payment_request.approved",
        "payment_request.declined",
        "top_up.succeeded",
        "account.opened",
    } <= names
    assert all(set(flow.expects) <= set(WEBHOOK_EVENT_TYPES) for flow in FLOWS)
    with pytest.raises(SandboxError, match="--list"):
        flow_named("payment.teleported")


def test_missing_types_lists_the_expected_types_not_seen() -> None:
    """Only the types no event has are missing, in the order expected."""
    event = WebhookEvent(id="evt_" + "a" * 32, type="payment.succeeded", created_at="2025-01-01T00:00:00Z", data={})
    assert missing_types(("payment.succeeded", "refund.succeeded", "payment.refunded"), [event]) == [
        "refund.succeeded",
        "payment.refunded",
    ]


def test_trigger_list_shows_every_flow() -> None:
    """`kpsandbox trigger --list` prints each flow's name, offline (no API is called)."""
    result = CliRunner().invoke(app, ["trigger", "--list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for flow in FLOWS:
        assert flow.name in result.output


def test_events_list_without_a_key_says_how_to_get_one() -> None:
    """No --api-key and no KPSANDBOX_API_KEY: an error naming both and `tenants create`, before any request."""
    result = CliRunner().invoke(app, ["events", "list"], env={"KPSANDBOX_API_KEY": ""})
    assert result.exit_code != 0
    assert isinstance(result.exception, SandboxError) and "tenants create" in result.exception.hint


async def test_a_problem_answer_becomes_an_error_quoting_its_code_and_detail() -> None:
    """A 409 problem from the API is a SandboxError with the status, code, param and detail."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer sk_test_x" and request.headers["Idempotency-Key"]
        problem: dict[str, Any] = {"code": "no_webhook_endpoints", "detail": "none subscribes", "param": None}
        return httpx.Response(409, json=problem, headers={"content-type": "application/problem+json"})

    async with ApiClient("http://sandbox", "sk_test_x", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(SandboxError, match="409 no_webhook_endpoints: none subscribes"):
            await client.resend("evt_" + "b" * 32)


async def test_an_api_that_does_not_answer_says_how_to_start_it() -> None:
    """A refused connection names the URL and `kpsandbox serve`."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with ApiClient("http://sandbox:1", "sk_test_x", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(SandboxError, match="http://sandbox:1") as caught:
            await client.events()
    assert "kpsandbox serve" in caught.value.hint


def test_the_cli_reaches_a_wildcard_bound_api_on_the_loopback_address() -> None:
    """0.0.0.0 is a bind address, not one to call: the CLI calls 127.0.0.1."""
    assert api_base_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert api_base_url("api.local", 9000) == "http://api.local:9000"


def test_the_once_per_object_types_are_the_migrations_unique_index() -> None:
    """infra/webhook_events.py and migration 0030's partial unique index name the same event types."""
    sql = (REPO_ROOT / "infra/migrations/0030_api_webhook_resends.sql").read_text()
    index = sql[sql.index("api_events_once_per_object") : sql.index(";", sql.index("api_events_once_per_object"))]
    assert set(re.findall(r"'([a-z_.]+)'", index)) == ONCE_PER_OBJECT


def test_the_replay_docstring_names_the_bound_it_enforces() -> None:
    """The API reference says how many events a replay takes per call: the constant's value."""
    assert f"at most {REPLAY_EVENTS_MAX}" in " ".join((replay_webhook_endpoint.__doc__ or "").split())
