"""Compact event records and their fast wire encoding.

The simulation emits small tuples, not pydantic models: building and dumping a model costs
about ten microseconds, which alone would cap a run below the 100k events/s target. Each
record renders the exact bytes `schemas.events.dump_event` would produce for the same event
(proved by `tests/unit/test_sim_records.py` over many generated events) and can build the
validated pydantic model on demand (`to_model`) for callers that want one.

Every string a record carries is produced by the simulation itself (tokens, ids, catalog
names) and is plain ASCII without quotes or backslashes, so no JSON escaping is needed;
`check_plain_ascii` guards the catalog names that come from the calibration file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from schemas.accounts import AccountOpened
from schemas.cash import CashIn, CashOut, CashPurchase
from schemas.commerce import OrderPaid, OrderPaidOnDelivery, OrderPlaced
from schemas.envelope import Envelope
from schemas.payments import PaymentPostRequested, PaymentRequested, PaymentVoidRequested
from schemas.topics import ACCOUNTS, CASH, ORDERS, PAYMENT_REQUESTS, TopicSpec

PRODUCER: Final = "kpsandbox-sim"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP_CACHE_MAX: Final = 86_400  # one simulated day of distinct seconds (whole minutes)
_PLAIN: Final = re.compile(r"^[A-Za-z0-9 ._()&'-]*$")


def check_plain_ascii(text: str) -> str:
    """Returns text unchanged if it needs no JSON escaping; raises ValueError otherwise."""
    if not _PLAIN.match(text) or "'" in text:
        raise ValueError(f"{text!r} must be plain ASCII letters, digits, spaces and ._()&-")
    return text


class Timestamps(dict[int, str]):
    """Formats simulated epoch seconds exactly as pydantic dumps a UTC datetime ('...T08:30:15Z').

    Index it with a second (`ts[rec.ts]`). Every event formats its time once and neighbouring
    events often share a second, so formatted strings are kept in a bounded cache: a dictionary
    hit costs a fraction of building the string again.
    """

    __slots__ = ("_days", "_minutes", "_seconds")

    def __init__(self) -> None:
        super().__init__()
        self._days: dict[int, str] = {}
        # Lookup tables instead of formatting for the seconds not yet cached.
        self._minutes = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
        self._seconds = [f"{s:02d}Z" for s in range(60)]

    def __missing__(self, ts: int) -> str:
        # Fills the whole minute at once: the next events most likely fall in the same minute.
        if len(self) >= TIMESTAMP_CACHE_MAX:
            self.clear()
        day, second = divmod(ts, 86_400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        minute = second // 60
        prefix += self._minutes[minute]
        first = ts - ts % 60
        for sec, text in enumerate(self._seconds):
            self[first + sec] = prefix + text
        return self[ts]

    def iso(self, ts: int) -> str:
        """ISO 8601 UTC with a 'Z' suffix, whole seconds (the simulation never uses fractions)."""
        return self[ts]


def _opt(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def _head(event_id: str, occurred_at: str, correlation_id: str, event_type: str | None) -> str:
    # Pydantic dumps inherited fields first, so `event_type` follows the envelope only when the
    # model derives from `Envelope` directly; intermediate bases (_AgentCash, _Order) come first.
    head = (
        f'{{"schema_version":1,"event_id":"{event_id}","occurred_at":"{occurred_at}",'
        f'"producer":"{PRODUCER}","correlation_id":"{correlation_id}"'
    )
    return head if event_type is None else f'{head},"event_type":"{event_type}"'


def _envelope(rec: NamedTuple, ts: Timestamps) -> dict[str, object]:
    data = rec._asdict()
    data["occurred_at"] = ts.iso(data.pop("ts"))
    data["producer"] = PRODUCER
    return data


class AccountOpenedRec(NamedTuple):
    """account.opened"""

    event_id: str
    ts: int
    correlation_id: str
    account_id: str
    kind: str
    holder_token: str
    provider: str
    district: str
    iban: str | None
    raast_alias: str | None
    gender: str | None
    age_band: str | None
    area: str | None
    merchant_category: str | None
    accepted_instruments: tuple[str, ...]

    @property
    def topic(self) -> TopicSpec:
        return ACCOUNTS

    @property
    def key(self) -> str:
        return self.account_id

    def json(self, ts: Timestamps) -> str:
        instruments = ",".join(f'"{i}"' for i in self.accepted_instruments)
        return (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, 'account.opened')},"
            f'"account_id":"{self.account_id}","kind":"{self.kind}","holder_token":"{self.holder_token}",'
            f'"provider":"{self.provider}","district":"{self.district}","iban":{_opt(self.iban)},'
            f'"raast_alias":{_opt(self.raast_alias)},"gender":{_opt(self.gender)},'
            f'"age_band":{_opt(self.age_band)},"area":{_opt(self.area)},'
            f'"merchant_category":{_opt(self.merchant_category)},"accepted_instruments":[{instruments}]}}'
        )

    def to_model(self, ts: Timestamps) -> Envelope:
        return AccountOpened.model_validate(_envelope(self, ts))


class PaymentRequestedRec(NamedTuple):
    """payment.requested"""

    event_id: str
    ts: int
    correlation_id: str
    kind: str
    rail: str
    payer_account_id: str
    payee_account_id: str
    amount: int
    pending: bool
    timeout_seconds: int
    order_id: str | None
    reference: str | None

    @property
    def topic(self) -> TopicSpec:
        return PAYMENT_REQUESTS

    @property
    def key(self) -> str:
        return self.payer_account_id

    def json(self, ts: Timestamps) -> str:
        return (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, 'payment.requested')},"
            f'"kind":"{self.kind}","rail":"{self.rail}","payer_account_id":"{self.payer_account_id}",'
            f'"payee_account_id":"{self.payee_account_id}","amount":{self.amount},"currency":"PKR",'
            f'"pending":{"true" if self.pending else "false"},"timeout_seconds":{self.timeout_seconds},'
            f'"order_id":{_opt(self.order_id)},"reference":{_opt(self.reference)}}}'
        )

    def to_model(self, ts: Timestamps) -> Envelope:
        return PaymentRequested.model_validate(_envelope(self, ts))


class PendingDecisionRec(NamedTuple):
    """payment.post_requested (always a full capture) or payment.void_requested (`post` says which)."""

    event_id: str
    ts: int
    correlation_id: str
    post: bool
    pending_id: str
    payer_account_id: str

    @property
    def topic(self) -> TopicSpec:
        return PAYMENT_REQUESTS

    @property
    def model(self) -> type[Envelope]:
        return PaymentPostRequested if self.post else PaymentVoidRequested

    @property
    def event_type(self) -> str:
        return "payment.post_requested" if self.post else "payment.void_requested"

    @property
    def key(self) -> str:
        return self.payer_account_id

    def json(self, ts: Timestamps) -> str:
        amount = ',"amount":null' if self.post else ""
        return (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, self.event_type)},"
            f'"pending_id":"{self.pending_id}","payer_account_id":"{self.payer_account_id}"{amount}}}'
        )

    def to_model(self, ts: Timestamps) -> Envelope:
        data = _envelope(self, ts)
        del data["post"]
        return self.model.model_validate(data)


class AgentCashRec(NamedTuple):
    """cash.in or cash.out at an agent (`cash_in` says which)."""

    event_id: str
    ts: int
    correlation_id: str
    cash_in: bool
    customer_account_id: str
    agent_account_id: str
    amount: int

    @property
    def topic(self) -> TopicSpec:
        return PAYMENT_REQUESTS

    @property
    def model(self) -> type[Envelope]:
        return CashIn if self.cash_in else CashOut

    @property
    def key(self) -> str:
        return self.customer_account_id

    def json(self, ts: Timestamps) -> str:
        event_type = "cash.in" if self.cash_in else "cash.out"
        return (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, None)},"
            f'"customer_account_id":"{self.customer_account_id}","agent_account_id":"{self.agent_account_id}",'
            f'"amount":{self.amount},"currency":"PKR","event_type":"{event_type}"}}'
        )

    def to_model(self, ts: Timestamps) -> Envelope:
        data = _envelope(self, ts)
        del data["cash_in"]
        return self.model.model_validate(data)


class CashPurchaseRec(NamedTuple):
    """cash.purchase"""

    event_id: str
    ts: int
    correlation_id: str
    payer_token: str
    merchant_account_id: str | None
    merchant_category: str
    district: str
    amount: int

    @property
    def topic(self) -> TopicSpec:
        return CASH

    @property
    def key(self) -> str:
        return self.payer_token

    def json(self, ts: Timestamps) -> str:
        return (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, 'cash.purchase')},"
            f'"payer_token":"{self.payer_token}","merchant_account_id":{_opt(self.merchant_account_id)},'
            f'"merchant_category":"{self.merchant_category}","district":"{self.district}",'
            f'"amount":{self.amount},"currency":"PKR"}}'
        )

    def to_model(self, ts: Timestamps) -> Envelope:
        return CashPurchase.model_validate(_envelope(self, ts))


class OrderRec(NamedTuple):
    """order.placed, order.paid or order.paid_on_delivery (`event_type` says which).

    `payment_method` and `district` are set only on order.placed; `buyer_account_id` and
    `payment_event_id` only on order.paid.
    """

    event_id: str
    ts: int
    correlation_id: str
    event_type: str
    order_id: str
    buyer_token: str
    seller_account_id: str
    amount: int
    payment_method: str | None
    district: str | None
    buyer_account_id: str | None
    payment_event_id: str | None

    @property
    def topic(self) -> TopicSpec:
        return ORDERS

    @property
    def model(self) -> type[Envelope]:
        return _ORDER_MODELS[self.event_type]

    @property
    def key(self) -> str:
        return self.buyer_token

    def json(self, ts: Timestamps) -> str:
        body = (
            f"{_head(self.event_id, ts[self.ts], self.correlation_id, None)},"
            f'"order_id":"{self.order_id}","buyer_token":"{self.buyer_token}",'
            f'"seller_account_id":"{self.seller_account_id}","amount":{self.amount},"currency":"PKR",'
            f'"event_type":"{self.event_type}"'
        )
        if self.event_type == "order.placed":
            return f'{body},"payment_method":"{self.payment_method}","district":"{self.district}"}}'
        if self.event_type == "order.paid":
            return f'{body},"buyer_account_id":"{self.buyer_account_id}","payment_event_id":"{self.payment_event_id}"}}'
        return body + "}"

    def to_model(self, ts: Timestamps) -> Envelope:
        data = {k: v for k, v in _envelope(self, ts).items() if v is not None}
        return self.model.model_validate(data)


_ORDER_MODELS: Final[dict[str, type[Envelope]]] = {
    "order.placed": OrderPlaced,
    "order.paid": OrderPaid,
    "order.paid_on_delivery": OrderPaidOnDelivery,
}

Record = AccountOpenedRec | PaymentRequestedRec | PendingDecisionRec | AgentCashRec | CashPurchaseRec | OrderRec


def event_type_of(rec: Record) -> str:
    """The contract's `event_type` tag of a record."""
    if isinstance(rec, OrderRec | PendingDecisionRec):
        return rec.event_type
    if isinstance(rec, AgentCashRec):
        return "cash.in" if rec.cash_in else "cash.out"
    return _RECORD_TYPES[type(rec)]


_RECORD_TYPES: Final[dict[type, str]] = {
    AccountOpenedRec: "account.opened",
    PaymentRequestedRec: "payment.requested",
    CashPurchaseRec: "cash.purchase",
}
