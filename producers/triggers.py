"""`kpsandbox trigger FLOW`: real flows through the HTTP API, to make the webhooks a startup waits on.

Each flow is what a startup's own code would do — open wallets, top one up, pay, refund, ask for a
payment — through the API (producers/api_client.py), waiting (bounded) for each object to reach the
status the flow needs, so the events that follow are the real ones: recorded by the views consumer
and the API, signed and delivered by the dispatcher to every subscribed endpoint. Nothing is faked
and nothing bypasses the ledger; a flow therefore needs the whole sandbox running (`kpsandbox serve`).

`overrides` (`--override key=value`) change the fields of one request of the flow, named by
`Flow.overrides` (the payment of payment.succeeded, the refund of refund.succeeded, …); values are
read as JSON when they parse (5000 → an integer), else as text. The API's own models validate them,
so an unknown key or a wrong type is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from infra.errors import SandboxError
from producers.api_client import ApiClient
from schemas.api.accounts import Account, AccountCreate
from schemas.api.magic import NO_ANSWER_TIMEOUT_S, PAYEE_INSUFFICIENT_FUNDS, PAYEE_NO_ANSWER
from schemas.api.payment_requests import PaymentRequest, PaymentRequestCreate
from schemas.api.payments import Payment, PaymentCreate, TopUp, TopUpCreate
from schemas.api.refunds import Refund, RefundCreate
from schemas.webhooks import WebhookEvent

POLL_S: Final = 0.2
STATUS_WAIT_S: Final = 30.0  # the longest a flow waits for one object to reach a status
EVENTS_WAIT_S: Final = 15.0  # the longest it then waits for the expected events
EVENTS_PAGE: Final = 100  # events read per look (newest first): a flow makes far fewer
TOP_UP_AMOUNT: Final = 100_000  # Rs 1,000 in paisa: enough for every flow's payment
PAYMENT_AMOUNT: Final = 25_000
DISTRICT: Final = "Peshawar"

Made = Account | TopUp | Payment | Refund | PaymentRequest
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass
class Run:
    """One flow's run: the client, the overrides, and every object made so far (in order)."""

    client: ApiClient
    overrides: Mapping[str, Any]
    made: list[Made] = field(default_factory=list)

    def keep(self, thing: M) -> M:
        """Remembers an object the flow made (or moved on); the latest copy wins."""
        self.made = [m for m in self.made if m.id != getattr(thing, "id", None)]
        self.made.append(thing)  # type: ignore[arg-type]
        return thing


@dataclass(frozen=True)
class Flow:
    """A named flow: what it does, which request `--override` changes, and the events it expects."""

    name: str
    description: str
    overrides: str
    expects: tuple[str, ...]
    steps: Callable[[Run], Awaitable[None]]


@dataclass
class TriggerResult:
    """What a run made and the events about those objects (oldest first); `missing`: expected, not seen."""

    flow: Flow
    made: list[Made]
    events: list[WebhookEvent]
    missing: list[str]


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as a dict; values as JSON when they parse, else text."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SandboxError(f"--override {pair!r} is not key=value", "write it as e.g. --override amount=5000")
        try:
            parsed[key.strip()] = json.loads(value)
        except ValueError:
            parsed[key.strip()] = value
    return parsed


def build(model: type[M], defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> M:
    """The request `model` from the flow's `defaults` and the user's `overrides`, validated by the API's model."""
    try:
        return model.model_validate({**defaults, **overrides})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in error.errors())
        raise SandboxError(
            f"the overrides do not make a valid {model.__name__}: {problems}",
            f"use the fields of {model.__name__} (the API reference at /docs lists them)",
        ) from None


async def until(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, wait_s: float) -> T:
    """`read()` every POLL_S until `done`; a SandboxError naming `what` after `wait_s`."""
    for _ in range(math.ceil(wait_s / POLL_S) + 1):
        current = await read()
        if done(current):
            return current
        await asyncio.sleep(POLL_S)
    raise SandboxError(
        f"{what} did not happen within {wait_s:.0f} s",
        "run the whole sandbox (`kpsandbox serve`): the ledger and the views consumer decide every status",
    )


def _msisdn() -> str:
    return "0345" + f"{uuid.uuid4().int % 10**7:07d}"


async def _wallet(run: Run, overrides: Mapping[str, Any] | None = None) -> Account:
    defaults = {"kind": "citizen_wallet", "msisdn": _msisdn(), "district": DISTRICT, "gender": "female"}
    opened = await run.client.open_account(build(AccountCreate, defaults, overrides or {}))
    is_open = await until(lambda: run.client.account(opened.id), lambda a: a.status == "open", "opening", STATUS_WAIT_S)
    return run.keep(is_open)


async def _top_up(run: Run, account: str, overrides: Mapping[str, Any] | None = None) -> TopUp:
    asked = await run.client.top_up(build(TopUpCreate, {"account": account, "amount": TOP_UP_AMOUNT}, overrides or {}))
    done = await until(
        lambda: run.client.top_up_settled(asked.id, POLL_S),
        lambda t: t.status != "processing",
        "the top-up",
        STATUS_WAIT_S,
    )
    return run.keep(done)


async def _funded_wallet(run: Run) -> Account:
    wallet = await _wallet(run)
    await _top_up(run, wallet.id)
    return wallet


async def _pay(
    run: Run, defaults: Mapping[str, Any], until_status: tuple[str, ...], wait_s: float = STATUS_WAIT_S
) -> Payment:
    asked = run.keep(await run.client.pay(build(PaymentCreate, defaults, run.overrides)))
    reached = await until(
        lambda: run.client.payment(asked.id), lambda p: p.status in until_status, f"payment {until_status}", wait_s
    )
    return run.keep(reached)


async def _p2p(run: Run, until_status: tuple[str, ...], **extra: Any) -> Payment:
    payer, payee = await _funded_wallet(run), await _wallet(run)
    return await _pay(run, {"payer": payer.id, "payee": payee.id, "amount": PAYMENT_AMOUNT, **extra}, until_status)


async def _request(run: Run, *, funded: bool, **extra: Any) -> PaymentRequest:
    payee = await _wallet(run)
    payer = await (_funded_wallet(run) if funded else _wallet(run))
    defaults = {"payee": payee.id, "payer": payer.id, "amount": PAYMENT_AMOUNT, **extra}
    return run.keep(await run.client.request_payment(build(PaymentRequestCreate, defaults, run.overrides)))


async def account_opened(run: Run) -> None:
    """Opens a citizen wallet and waits until the ledger has opened it."""
    await _wallet(run, run.overrides)


async def top_up_succeeded(run: Run) -> None:
    """Opens a wallet and tops it up at the sandbox's agent."""
    await _top_up(run, (await _wallet(run)).id, run.overrides)


async def payment_succeeded(run: Run) -> None:
    """A funded wallet pays another."""
    await _p2p(run, ("succeeded", "failed"))


async def payment_failed_insufficient_funds(run: Run) -> None:
    """Pays the magic payee that makes the ledger refuse with exceeds_credits."""
    payer = await _wallet(run)
    defaults = {"payer": payer.id, "payee_alias": PAYEE_INSUFFICIENT_FUNDS, "amount": PAYMENT_AMOUNT}
    await _pay(run, defaults, ("failed", "succeeded"))


async def payment_failed_timed_out(run: Run) -> None:
    """Pays the magic payee nobody answers for: the API times the payment out."""
    payer = await _wallet(run)
    defaults = {"payer": payer.id, "payee_alias": PAYEE_NO_ANSWER, "amount": PAYMENT_AMOUNT}
    await _pay(run, defaults, ("failed", "succeeded"), wait_s=NO_ANSWER_TIMEOUT_S + STATUS_WAIT_S)


async def payment_requires_capture(run: Run) -> None:
    """Authorises a payment (capture_method manual) and leaves it to be captured."""
    await _p2p(run, ("requires_capture", "failed"), capture_method="manual")


async def payment_canceled(run: Run) -> None:
    """Authorises a payment, then cancels it."""
    authorised = await _p2p(run, ("requires_capture", "failed"), capture_method="manual")
    await run.client.cancel(authorised.id)
    run.keep(
        await until(
            lambda: run.client.payment(authorised.id), lambda p: p.status != "processing", "the cancel", STATUS_WAIT_S
        )
    )


async def payment_expired(run: Run) -> None:
    """Authorises a payment that expires a second later, uncaptured."""
    await _p2p(run, ("expired", "failed", "canceled", "succeeded"), capture_method="manual", expires_in=1)


async def refund_succeeded(run: Run) -> None:
    """A payment succeeds, then is refunded (overrides apply to the refund)."""
    payer, payee = await _funded_wallet(run), await _wallet(run)
    defaults = {"payer": payer.id, "payee": payee.id, "amount": PAYMENT_AMOUNT}
    paid = await until_paid(run, run.keep(await run.client.pay(build(PaymentCreate, defaults, {}))))
    asked = await run.client.refund(build(RefundCreate, {"payment": paid.id, "amount": paid.amount}, run.overrides))
    run.keep(
        await until(
            lambda: run.client.refund_settled(asked.id, POLL_S),
            lambda r: r.status != "processing",
            "the refund",
            STATUS_WAIT_S,
        )
    )


async def until_paid(run: Run, payment: Payment) -> Payment:
    """The payment once it is no longer processing."""
    return run.keep(
        await until(
            lambda: run.client.payment(payment.id), lambda p: p.status != "processing", "the payment", STATUS_WAIT_S
        )
    )


async def payment_request_created(run: Run) -> None:
    """Asks a wallet to pay another."""
    await _request(run, funded=False)


async def payment_request_approved(run: Run) -> None:
    """Asks a funded wallet to pay, and it approves: a payment is made."""
    asked = await _request(run, funded=True)
    approved = run.keep(await run.client.answer_request(asked.id, "approve"))
    if approved.payment is not None:
        await until_paid(run, await run.client.payment(approved.payment))


async def payment_request_declined(run: Run) -> None:
    """Asks a wallet to pay, and it declines."""
    asked = await _request(run, funded=False)
    run.keep(await run.client.answer_request(asked.id, "decline"))


async def payment_request_expired(run: Run) -> None:
    """Asks a wallet to pay within a second, and nobody answers: the API's scheduler expires it."""
    asked = await _request(run, funded=False, expires_in=1)
    run.keep(
        await until(
            lambda: run.client.payment_request(asked.id), lambda r: r.status == "expired", "the expiry", STATUS_WAIT_S
        )
    )


FLOWS: Final[tuple[Flow, ...]] = (
    Flow("account.opened", "open a citizen wallet", "AccountCreate", ("account.opened",), account_opened),
    Flow("top_up.succeeded", "top a wallet up at the agent", "TopUpCreate", ("top_up.succeeded",), top_up_succeeded),
    Flow("payment.succeeded", "one wallet pays another", "PaymentCreate", ("payment.succeeded",), payment_succeeded),
    Flow(
        "payment.failed.insufficient_funds",
        "pay the magic payee whose payment the ledger refuses (exceeds_credits)",
        "PaymentCreate",
        ("payment.failed",),
        payment_failed_insufficient_funds,
    ),
    Flow(
        "payment.failed.timed_out",
        f"pay the magic payee nobody answers for; the API times it out after {NO_ANSWER_TIMEOUT_S:.0f} s",
        "PaymentCreate",
        ("payment.failed",),
        payment_failed_timed_out,
    ),
    Flow(
        "payment.requires_capture",
        "authorise a payment (manual capture)",
        "PaymentCreate",
        ("payment.requires_capture",),
        payment_requires_capture,
    ),
    Flow(
        "payment.canceled",
        "authorise a payment, then cancel it",
        "PaymentCreate",
        ("payment.requires_capture", "payment.canceled"),
        payment_canceled,
    ),
    Flow(
        "payment.expired",
        "authorise a payment that expires after 1 s",
        "PaymentCreate",
        ("payment.requires_capture", "payment.expired"),
        payment_expired,
    ),
    Flow(
        "refund.succeeded",
        "pay, then refund the payment in full",
        "RefundCreate",
        ("payment.succeeded", "refund.succeeded", "payment.refunded"),
        refund_succeeded,
    ),
    Flow(
        "payment_request.created",
        "ask a wallet to pay",
        "PaymentRequestCreate",
        ("payment_request.created",),
        payment_request_created,
    ),
    Flow(
        "payment_request.approved",
        "ask a wallet to pay; it approves",
        "PaymentRequestCreate",
        ("payment_request.created", "payment_request.approved", "payment.succeeded"),
        payment_request_approved,
    ),
    Flow(
        "payment_request.declined",
        "ask a wallet to pay; it declines",
        "PaymentRequestCreate",
        ("payment_request.created", "payment_request.declined"),
        payment_request_declined,
    ),
    Flow(
        "payment_request.expired",
        "ask a wallet to pay within 1 s; nobody answers",
        "PaymentRequestCreate",
        ("payment_request.created", "payment_request.expired"),
        payment_request_expired,
    ),
)
FLOWS_BY_NAME: Final[dict[str, Flow]] = {flow.name: flow for flow in FLOWS}


def flow_named(name: str) -> Flow:
    """The flow called `name`; a SandboxError listing them otherwise."""
    if name not in FLOWS_BY_NAME:
        raise SandboxError(f"there is no trigger flow {name!r}", "`kpsandbox trigger --list` shows them all")
    return FLOWS_BY_NAME[name]


async def events_about(client: ApiClient, ids: set[str]) -> list[WebhookEvent]:
    """The latest events (up to EVENTS_PAGE) whose `data.id` is one of `ids`, oldest first."""
    page = await client.events(limit=EVENTS_PAGE)
    return [event for event in reversed(page.data) if event.data.get("id") in ids]


def missing_types(expected: tuple[str, ...], events: list[WebhookEvent]) -> list[str]:
    """The expected event types not among `events`."""
    seen = {event.type for event in events}
    return [name for name in expected if name not in seen]


async def run_trigger(client: ApiClient, name: str, overrides: Mapping[str, Any],
                      *, events_wait_s: float = EVENTS_WAIT_S) -> TriggerResult:  # fmt: skip
    """Runs the flow, then waits (at most `events_wait_s`) for its expected events."""
    flow = flow_named(name)
    run = Run(client, overrides)
    await flow.steps(run)
    ids = {thing.id for thing in run.made}
    events: list[WebhookEvent] = []
    for _ in range(math.ceil(events_wait_s / POLL_S) + 1):
        events = await events_about(client, ids)
        if not missing_types(flow.expects, events):
            break
        await asyncio.sleep(POLL_S)
    return TriggerResult(flow=flow, made=run.made, events=events, missing=missing_types(flow.expects, events))
