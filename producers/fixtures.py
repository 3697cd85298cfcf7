"""`kpsandbox fixtures FILE.toml`: runs a fixture file's steps through the HTTP API, in order.

The file format (steps, names, references) is schemas/api/fixtures.py. Each action is what a
startup's code would do, through producers/api_client.py, and each waits (at most SETTLE_WAIT_S)
until its object has left `opening`/`processing`, so the next step sees a settled state: a capture
finds its payment `requires_capture`, a refund finds it `succeeded`. An `expect` step re-reads its
object until every field it names matches, for at most `within_s`; the run stops at the first
expectation that does not hold (the later steps would only add noise), and the caller exits 1.

Requests are built with the API's own models (schemas/api), so a misspelt field or a wrong type
is refused before anything is sent — at load time for field names, at the step for values that
come from references — and every message names the step's number and the field.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from infra.errors import SandboxError
from producers.api_client import ApiClient
from producers.triggers import POLL_S, until
from schemas.api.accounts import Account, AccountCreate
from schemas.api.fixtures import (
    Fixture,
    FixtureError,
    Step,
    expectation,
    parse_duration,
    parse_fixture,
    resolve,
)
from schemas.api.payment_requests import PaymentRequest, PaymentRequestCreate
from schemas.api.payments import Payment, PaymentCapture, PaymentCreate, TopUp, TopUpCreate
from schemas.api.refunds import Refund, RefundCreate
from schemas.api.test_clocks import TestClock, TestClockAdvance, TestClockCreate

SETTLE_WAIT_S: Final = 30.0  # the longest an action waits for its object to leave opening/processing
TOP_UP_AMOUNT: Final = 100_000  # Rs 1,000 in paisa, when a top_up step names no amount
DISTRICT: Final = "Peshawar"
FORMAT_HINT: Final = "fix the file: docs/webhooks.md, 'Fixtures', describes steps, names and references"
# The API request model whose fields each action takes (checked when the file is loaded).
REQUEST_MODELS: Final[dict[str, type[BaseModel]]] = {
    "test_clock": TestClockCreate,
    "open_account": AccountCreate,
    "top_up": TopUpCreate,
    "pay": PaymentCreate,
    "refund": RefundCreate,
    "request_payment": PaymentRequestCreate,
}

Thing = Account | TopUp | Payment | Refund | PaymentRequest | TestClock
M = TypeVar("M", bound=BaseModel)


@dataclass
class StepResult:
    """What a step did: the object it made or moved (latest copy), and for `expect` whether it held."""

    step: Step
    thing: Thing | None
    ok: bool = True
    detail: str = ""


@dataclass
class FixtureRun:
    """One run's state: the client, each name's object id, and the latest copy of every object."""

    client: ApiClient
    names: dict[str, str] = field(default_factory=dict)
    objects: dict[str, Thing] = field(default_factory=dict)

    def keep(self, thing: Thing, name: str | None = None) -> Thing:
        """Remembers `thing` (the latest copy wins) and, given a name, what the name refers to."""
        self.objects[thing.id] = thing
        if name is not None:
            self.names[name] = thing.id
        return thing

    def lookup(self) -> dict[str, dict[str, Any]]:
        """Each name's object as it reads now (JSON values), for resolving references."""
        return {name: self.objects[oid].model_dump(mode="json") for name, oid in self.names.items()}


def load_fixture(path: Path) -> Fixture:
    """The fixture at `path`, parsed and checked (structure, names, request fields); SandboxError otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SandboxError(f"cannot read {path}: {error}", "give the path of a fixture file (.toml)") from None
    try:
        fixture = parse_fixture(text)
        for step in fixture.steps:
            check_request_fields(step)
    except FixtureError as error:
        raise SandboxError(f"{path}: {error}", FORMAT_HINT) from None
    return fixture


def check_request_fields(step: Step) -> None:
    """A step of an API action names only fields of the API's request model."""
    model = REQUEST_MODELS.get(step.action)
    if model is None:
        return
    unknown = sorted(set(step.fields) - set(model.model_fields))
    if unknown:
        known = ", ".join(name for name in model.model_fields if name != "name")
        raise FixtureError(f"{step.label}: unknown field {unknown[0]!r}; {model.__name__} takes {known}")


def request(model: type[M], defaults: dict[str, Any], fields: dict[str, Any], step: Step) -> M:
    """The API request `model` from `defaults` and the step's (resolved) `fields`, or an error naming the field."""
    try:
        return model.model_validate({**defaults, **fields})
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(map(str, problem["loc"])) or "-"
        raise SandboxError(f"{step.label}, field {where}: {problem['msg']}", FORMAT_HINT) from None


def _msisdn() -> str:
    return "0345" + f"{uuid.uuid4().int % 10**7:07d}"


async def _settled(read: Callable[[], Awaitable[M]], step: Step, transient: tuple[str, ...]) -> M:
    return await until(read, lambda thing: getattr(thing, "status", None) not in transient, step.label, SETTLE_WAIT_S)


async def test_clock(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Creates a test clock, frozen at `frozen_time` (default: now); its name is the step's name."""
    if fields.get("frozen_time", "now") == "now":
        fields["frozen_time"] = datetime.now(UTC).replace(microsecond=0)
    defaults = {"name": step.name} if step.name else {}
    return await run.client.create_clock(request(TestClockCreate, defaults, fields, step))


async def advance_clock(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Moves a clock forward `by` a duration or `to` a time; waits until it is `ready` again."""
    clock_id = fields["clock"]
    if "by" in fields:
        current = await run.client.clock(clock_id)
        try:
            target: Any = current.frozen_time + parse_duration(fields["by"], f"{step.label}, field by")
        except FixtureError as error:
            raise SandboxError(str(error), FORMAT_HINT) from None
    else:
        target = fields["to"]
    await run.client.advance_clock(clock_id, request(TestClockAdvance, {}, {"frozen_time": target}, step))
    return await until(lambda: run.client.clock(clock_id), lambda c: c.status == "ready", step.label, SETTLE_WAIT_S)


async def open_account(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Opens an account (default: a citizen wallet in Peshawar) and waits until the ledger opened it."""
    defaults: dict[str, Any] = {"kind": "citizen_wallet", "msisdn": _msisdn(), "district": DISTRICT}
    if str(fields.get("kind", "citizen_wallet")).startswith("citizen"):
        defaults["gender"] = "female"
    opened = await run.client.open_account(request(AccountCreate, defaults, fields, step))
    return await _settled(lambda: run.client.account(opened.id), step, ("opening",))


async def top_up(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Tops an account up at the sandbox's agent (default Rs 1,000) and waits for the ledger."""
    asked = await run.client.top_up(request(TopUpCreate, {"amount": TOP_UP_AMOUNT}, fields, step))
    return await _settled(lambda: run.client.top_up_settled(asked.id, POLL_S), step, ("processing",))


async def pay(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Makes a payment and waits until the ledger decided it."""
    asked = await run.client.pay(request(PaymentCreate, {}, fields, step))
    return await _settled(lambda: run.client.payment(asked.id, POLL_S), step, ("processing",))


async def capture(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Captures an authorised payment (in full, or `amount`) and waits until it is posted."""
    body = request(PaymentCapture, {}, {k: v for k, v in fields.items() if k != "payment"}, step)
    asked = await run.client.capture(fields["payment"], body)
    return await _settled(lambda: run.client.payment(asked.id, POLL_S), step, ("processing",))


async def cancel(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Cancels an authorised payment and waits until the ledger voided it."""
    asked = await run.client.cancel(fields["payment"])
    return await _settled(lambda: run.client.payment(asked.id, POLL_S), step, ("processing",))


async def refund(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Refunds a payment (in full, or `amount`) and waits for the ledger."""
    asked = await run.client.refund(request(RefundCreate, {}, fields, step))
    return await _settled(lambda: run.client.refund_settled(asked.id, POLL_S), step, ("processing",))


async def request_payment(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Asks an account to pay (a request-to-pay); it stays `pending` until approved, declined or expired."""
    return await run.client.request_payment(request(PaymentRequestCreate, {}, fields, step))


async def approve(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Approves a request-to-pay; the payment it makes is waited for and, with `name`, named."""
    approved = await run.client.answer_request(fields["payment_request"], "approve")
    if approved.payment is not None:
        paid = await _settled(lambda: run.client.payment(approved.payment or "", POLL_S), step, ("processing",))
        run.keep(paid, step.name)
    return approved


async def decline(run: FixtureRun, step: Step, fields: dict[str, Any]) -> Thing:
    """Declines a request-to-pay."""
    return await run.client.answer_request(fields["payment_request"], "decline")


ACTIONS: Final[dict[str, Callable[[FixtureRun, Step, dict[str, Any]], Awaitable[Thing]]]] = {
    "test_clock": test_clock,
    "advance_clock": advance_clock,
    "open_account": open_account,
    "top_up": top_up,
    "pay": pay,
    "capture": capture,
    "cancel": cancel,
    "refund": refund,
    "request_payment": request_payment,
    "approve": approve,
    "decline": decline,
}
NAMED_BY_STEP: Final = frozenset(ACTIONS) - {"approve"}  # approve's name is the payment it made


def reader(client: ApiClient, object_id: str, step: Step) -> Callable[[], Awaitable[Thing]]:
    """How to read the object `object_id` (by its id's prefix) for an `expect` step."""
    readers: dict[str, Callable[[], Awaitable[Thing]]] = {
        "acc": lambda: client.account(object_id),
        "pay": lambda: client.payment(object_id),
        "tu": lambda: client.top_up_settled(object_id, 0),
        "re": lambda: client.refund_settled(object_id, 0),
        "pr": lambda: client.payment_request(object_id),
        "clk": lambda: client.clock(object_id),
    }
    prefix = object_id.partition("_")[0]
    if prefix not in readers:
        raise SandboxError(f"{step.label}, field object: cannot read {object_id!r}", "name an earlier step's object")
    return readers[prefix]


def mismatches(thing: Thing, checks: dict[str, Any], step: Step) -> list[str]:
    """How `thing` differs from `checks` (field → expected value): e.g. `status is failed, expected succeeded`."""
    current = thing.model_dump(mode="json")
    unknown = [name for name in checks if name not in current]
    if unknown:
        fields = ", ".join(current)
        raise SandboxError(
            f"{step.label}, field {unknown[0]}: a {thing.object} has no such field ({fields})", FORMAT_HINT
        )
    return [f"{name} is {current[name]!r}, expected {want!r}" for name, want in checks.items() if current[name] != want]


async def expect(run: FixtureRun, step: Step) -> StepResult:
    """Re-reads the object until every check holds, for at most `within_s`."""
    wanted = expectation(step)
    lookup = run.lookup()
    object_id = str(resolve("object", wanted.object, lookup, step.label))
    checks = resolve("checks", wanted.checks, lookup, step.label)
    read = reader(run.client, object_id, step)
    deadline = time.monotonic() + wanted.within_s
    for _ in range(math.ceil(wanted.within_s / POLL_S) + 1):
        thing = await read()
        if object_id in run.objects:
            run.keep(thing)
        differences = mismatches(thing, checks, step)
        if not differences or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    detail = "; ".join(differences) + f" (after {wanted.within_s:g} s)" if differences else ""
    return StepResult(step, thing, ok=not differences, detail=detail)


async def run_step(run: FixtureRun, step: Step) -> StepResult:
    """One step: its references resolved, its action done; errors name the step."""
    try:
        if step.action == "expect":
            return await expect(run, step)
        fields = resolve("fields", dict(step.fields), run.lookup(), step.label)
        thing = await ACTIONS[step.action](run, step, fields)
    except FixtureError as error:
        raise SandboxError(str(error), FORMAT_HINT) from None
    except SandboxError as error:
        if error.message.startswith(step.label):
            raise
        raise SandboxError(f"{step.label}: {error.message}", error.hint) from None
    run.keep(thing, step.name if step.action in NAMED_BY_STEP else None)
    return StepResult(step, thing)


async def run_fixture(client: ApiClient, fixture: Fixture, report: Callable[[StepResult], None]) -> list[StepResult]:
    """Runs the steps in order, reporting each; stops after the first expectation that does not hold."""
    run = FixtureRun(client)
    results: list[StepResult] = []
    for step in fixture.steps:
        result = await run_step(run, step)
        results.append(result)
        report(result)
        if not result.ok:
            break
    return results
