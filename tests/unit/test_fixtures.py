"""`kpsandbox fixtures`: the file format's parsing, references and errors (each naming the step and the
field), the example files under docs/fixtures, and an expectation's verdict against a fake API."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from infra.errors import SandboxError
from kpsandbox.cli import app
from producers.api_client import ApiClient
from producers.fixtures import load_fixture, run_fixture
from schemas.api.fixtures import FixtureError, parse_duration, parse_fixture, resolve
from tests.conftest import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "docs" / "fixtures").glob("*.toml"))
PAY_ID = "pay_" + "a" * 32
ALICE_ID = "acc_" + "1" * 32


def test_the_example_files_parse_and_pass_the_request_model_checks() -> None:
    """Both documented examples load: the payment that succeeds and the authorisation that expires."""
    assert {path.name for path in EXAMPLES} >= {"payment_succeeds.toml", "authorisation_expires.toml"}
    for path in EXAMPLES:
        fixture = load_fixture(path)
        assert fixture.steps and any(step.action == "expect" for step in fixture.steps), path
    expiring = load_fixture(REPO_ROOT / "docs" / "fixtures" / "authorisation_expires.toml")
    [advance] = [step for step in expiring.steps if step.action == "advance_clock"]
    assert parse_duration(advance.fields["by"], "by") == timedelta(days=8)


def test_steps_get_numbers_names_and_fields() -> None:
    """A step's action, its name (taken out of the fields) and its fields, numbered from 1."""
    fixture = parse_fixture(
        'title = "t"\n[[step]]\nopen_account = {name = "alice"}\n'
        '[[step]]\npay = {name = "p", payer = "alice", payee = "${alice.id}", amount = 5}\n'
    )
    assert fixture.title == "t"
    first, second = fixture.steps
    assert (first.number, first.action, first.name, first.fields) == (1, "open_account", "alice", {})
    assert (second.number, second.name, second.fields["amount"]) == (2, "p", 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[step]\nopen_account = {}", "not valid TOML"),
        ("[[step]]\nopen_acount = {}", r"step 1: unknown action 'open_acount'"),
        ("[[step]]\nopen_account = {}\npay = {payer = 'x'}", "step 1: a step has exactly one action"),
        (
            "[[step]]\nopen_account = {name = 'a'}\n[[step]]\npay = {payer = 'bob'}",
            r"step 2 \(pay\), field payer: 'bob'",
        ),
        ("[[step]]\nexpect = {object = '${ghost.id}', status = 'x'}", r"step 1 \(expect\), field object: 'ghost'"),
        ("[[step]]\nopen_account = {name = 'a'}\n[[step]]\nopen_account = {name = 'a'}", "already used by step 1"),
        ("[[step]]\ncancel = {payment = 'pay_" + "a" * 32 + "', why = 1}", r"step 1 \(cancel\): unknown field 'why'"),
        ("[[step]]\ntop_up = {amount = 5}", r"step 1 \(top_up\): field 'account' is missing"),
        ("[[step]]\ntest_clock = {name = 'c'}\n[[step]]\nadvance_clock = {clock = 'c', by = '8 weeks'}", "field by"),
        ("[[step]]\ntest_clock = {name = 'c'}\n[[step]]\nadvance_clock = {clock = 'c'}", "either `by`"),
        ("[[step]]\nexpect = {object = 'pay_" + "a" * 32 + "', status = 'x', within_s = 900}", "field within_s"),
        ("[[step]]\nexpect = {object = 'pay_" + "a" * 32 + "'}", "say what to expect"),
        ("[[step]]\nopen_account = {name = 'has space'}", "field name"),
        ("steps = []", "unknown top-level key 'steps'"),
        ("title = 'nothing'", "no steps"),
    ],
)
def test_a_bad_file_is_refused_naming_the_step_and_field(text: str, message: str) -> None:
    """Bad TOML, an unknown action, two actions, an unknown or later name, a name used twice, an unknown
    or missing field, a bad duration or wait, an empty expectation: each refused before anything runs."""
    with pytest.raises(FixtureError, match=message):
        parse_fixture(text)


def test_a_field_the_api_model_does_not_take_is_refused_at_load(tmp_path: Path) -> None:
    """`pay = {colour = …}` fails when the file is loaded, naming the step, the field and the model."""
    path = tmp_path / "bad.toml"
    path.write_text("[[step]]\nopen_account = {name = 'a'}\n[[step]]\npay = {payer = 'a', colour = 'red'}\n")
    with pytest.raises(SandboxError, match=r"step 2 \(pay\): unknown field 'colour'; PaymentCreate takes payer"):
        load_fixture(path)
    with pytest.raises(SandboxError, match="cannot read"):
        load_fixture(tmp_path / "missing.toml")


def test_references_resolve_to_ids_fields_and_text() -> None:
    """A bare name in a reference field is the id; `${x}` the id; `${x.field}` keeps the field's type;
    inside text it is spliced; a literal id passes; a field the object lacks is an error naming it."""
    lookup: dict[str, dict[str, Any]] = {"alice": {"id": ALICE_ID, "amount": 500, "payment": None}}
    assert resolve("payer", "alice", lookup, "step 2 (pay)") == ALICE_ID
    assert resolve("payee", "${alice}", lookup, "s") == ALICE_ID
    assert resolve("amount", "${alice.amount}", lookup, "s") == 500
    assert resolve("reference", "order for ${alice.id}", lookup, "s") == f"order for {ALICE_ID}"
    assert resolve("reference", "alice", lookup, "s") == "alice"  # not a reference field: plain text
    assert resolve("payer", ALICE_ID, lookup, "s") == ALICE_ID
    assert resolve("f", {"payer": "alice", "n": [1, "${alice.amount}"]}, lookup, "s") == {
        "payer": ALICE_ID,
        "n": [1, 500],
    }
    with pytest.raises(FixtureError, match=r"step 4 \(expect\), field object: alice has no 'payment'"):
        resolve("object", "${alice.payment}", lookup, "step 4 (expect)")


def _payment(status: str) -> dict[str, Any]:
    return {
        "id": PAY_ID, "status": status, "payer": ALICE_ID, "payee": "acc_" + "2" * 32, "amount": 500,
        "amount_captured": 0, "amount_refunded": 0, "kind": "p2p", "capture_method": "manual",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


async def test_an_expectation_that_does_not_hold_fails_and_stops_the_run() -> None:
    """The payment reads `requires_capture` however long one waits: the expect step fails saying
    what it saw, and the next step is not run."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json=_payment("requires_capture"))

    fixture = parse_fixture(
        f"[[step]]\nexpect = {{object = '{PAY_ID}', status = 'expired', within_s = 0.3}}\n"
        f"[[step]]\ncancel = {{payment = '{PAY_ID}'}}\n"
    )
    async with ApiClient("http://sandbox", "sk_test_x", transport=httpx.MockTransport(answer)) as client:
        results = await run_fixture(client, fixture, lambda result: None)
    [result] = results
    assert not result.ok and "status is 'requires_capture', expected 'expired'" in result.detail
    assert all(call == f"GET /v1/payments/{PAY_ID}" for call in seen) and len(seen) >= 2  # it re-read


async def test_an_expectation_on_a_field_the_object_lacks_names_it() -> None:
    """`expect = {…, stauts = …}` is an error naming the step and the misspelt field, not a failure."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_payment("succeeded"))

    fixture = parse_fixture(f"[[step]]\nexpect = {{object = '{PAY_ID}', stauts = 'succeeded'}}\n")
    async with ApiClient("http://sandbox", "sk_test_x", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(SandboxError, match=r"step 1 \(expect\), field stauts: a payment has no such field"):
            await run_fixture(client, fixture, lambda result: None)


def test_the_cli_refuses_a_bad_file_before_calling_the_api(tmp_path: Path) -> None:
    """`kpsandbox fixtures bad.toml` exits 2 with the step and field; no API is needed for that."""
    path = tmp_path / "bad.toml"
    path.write_text(json.dumps("not toml"))
    result = CliRunner().invoke(app, ["fixtures", str(path), "--api-key", "sk_test_x"])
    assert result.exit_code != 0 and isinstance(result.exception, SandboxError), result.output
    assert "not valid TOML" in result.exception.message
