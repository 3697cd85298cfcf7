"""The metrics state: pure aggregation of events into counters, windows and gauges. No I/O, no clock.

Feed it events (already parsed) with the Kafka record timestamp where needed; read `figures()`.
The state is a plain, JSON-serialisable snapshot (`to_json` / `from_json`) so the consumer can save
it in PostgreSQL together with the offsets it covers, and a restart gives the same figures.

Definitions (see docs/metrics.md for the full catalogue):
- a *payment* is a retail payment (RETAIL_KINDS): a `payment.requested` outcome, or a cash purchase,
  or a cash-on-delivery order; post/void outcomes finish a payment already counted at request;
- its *district* is the payer's (from account.opened; cash: the event's own district);
- *adults* are the citizen holders seen: account holders plus cash-only payer/buyer tokens;
- *active digital users* initiated at least one settled retail digital payment in the window.

Outcomes are deduplicated on `event_id` (the outbox may deliver one twice). Every distinct answer
has its own id, so an answer to a duplicate request (`exists`, `exists_with_different_amount`,
`exists_with_different_fields`) is recognised by its result and counted as a duplicate, never as
another payment; a `payment.expired` is read without changing any payment figure (its payment was
counted when it was requested).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from consumers.metrics import labels as L
from consumers.metrics.window import WINDOW_DAYS, DayWindow, day_of
from schemas.accounts import AccountOpened
from schemas.cash import CashPurchase
from schemas.commerce import OrderPaidOnDelivery, OrderPlaced
from schemas.metrics import SETTLEMENT_LATENCY_BUCKETS_S
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled

DEDUPE_IDS_MAX: Final = 1_000_000  # outcome ids remembered to drop redeliveries (FIFO beyond this)
LATENCY_PENDING_MAX: Final = 200_000  # request timestamps waiting for their outcome (FIFO beyond this)
LATENCY_BUCKETS_S: Final = SETTLEMENT_LATENCY_BUCKETS_S  # the catalogue's; snapshots store one count per bucket
LATENCY_MAX_S: Final = 3_600.0  # a gap longer than this is a replay, not a settlement latency
# Results that answer a request id seen before: the first decision about it was counted already.
DUPLICATE_RESULTS: Final = frozenset({"exists", "exists_with_different_amount", "exists_with_different_fields"})

Account = tuple[str, int, str | None, str, str | None, bool]  # kind, district, gender, holder, category, digital


def id64(uuid_int: int) -> int:
    """A 64-bit key from a 128-bit UUID (collisions are negligible at the bounded sizes used)."""
    return uuid_int >> 64


def _remember(pending: dict[int, int], key: int, ts_ms: int) -> None:
    """Keeps a timestamp waiting for its counterpart; the oldest is dropped beyond the bound."""
    if len(pending) >= LATENCY_PENDING_MAX:
        del pending[next(iter(pending))]
    pending[key] = ts_ms


@dataclass
class Figures:
    """Everything the exporter shows, as plain dicts keyed by label tuples."""

    payments: dict[tuple[str, str, str, str], tuple[int, int]]
    digital_share: dict[tuple[str, str], float]
    window_payments: dict[tuple[str, str], tuple[int, int]]
    adults_with_account: dict[tuple[str, str], int]
    adults: dict[tuple[str, str], float]
    inclusion: dict[tuple[str, str], float]
    active_users: dict[tuple[str, str], int]
    acceptance: dict[str, float]
    leakage: dict[str, float]
    cash_in: dict[str, int]
    cash_out: dict[str, int]
    inflow: dict[str, int]
    dead_letters: dict[str, int]
    events: dict[tuple[str, str], int]
    latency_buckets: list[int]
    latency_sum_s: float
    simulated_time_s: float


@dataclass
class Aggregator:
    """All metrics state of one consumer group."""

    accounts: dict[str, Account] = field(default_factory=dict)
    holders: dict[str, tuple[int, str]] = field(default_factory=dict)  # citizen holder -> (district, gender)
    unbanked: dict[str, tuple[float, int]] = field(default_factory=dict)  # cash-only token -> (first seen, district)
    banked_count: dict[tuple[int, str], int] = field(default_factory=dict)  # (district, gender) -> holders
    unbanked_count: dict[int, int] = field(default_factory=dict)  # district -> cash-only adults seen
    payments: dict[tuple[str, str, int, str], list[int]] = field(default_factory=dict)
    flows: dict[tuple[str, int], int] = field(default_factory=dict)  # (cash_in|cash_out|inflow, district)
    window: DayWindow = field(default_factory=lambda: DayWindow(WINDOW_DAYS))
    last_active: dict[str, int] = field(default_factory=dict)  # holder -> last day with a digital payment
    active_by_day: dict[int, dict[tuple[int, str], int]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    events: dict[tuple[str, str], int] = field(default_factory=dict)  # (topic, result) -> count
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0
    now_s: float = 0.0
    day_now: int = 0  # day_of(now_s), kept beside it because it is read on every event
    seen: set[int] = field(default_factory=set)
    seen_order: deque[int] = field(default_factory=deque)
    pending_requests: dict[int, int] = field(default_factory=dict)  # request id64 -> record ts (ms)
    pending_outcomes: dict[int, int] = field(default_factory=dict)  # request id64 -> outcome record ts (ms)

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def now_day(self) -> int:
        """The latest simulated day seen."""
        return self.day_now

    def count_event(self, topic: str, result: str) -> None:
        """Counts one message read from a catalog topic (counted, duplicate or unreadable)."""
        key = (topic, result)
        self.events[key] = self.events.get(key, 0) + 1

    def _advance(self, epoch_s: float) -> None:
        if epoch_s > self.now_s:
            old_day = self.day_now
            self.now_s = epoch_s
            self.day_now = day_of(epoch_s)
            if self.day_now != old_day:
                self.window.prune(self.now_day)
                first = self.window.first_day(self.now_day)
                for day in [d for d in self.active_by_day if d < first]:
                    del self.active_by_day[day]

    def _pay(self, instrument: str, rail: str, district: int, outcome: str, amount: int) -> None:
        entry = self.payments.setdefault((instrument, rail, district, outcome), [0, 0])
        entry[0] += 1
        entry[1] += amount

    def _flow(self, name: str, district: int, amount: int, day: int) -> None:
        self.flows[(name, district)] = self.flows.get((name, district), 0) + amount
        self.window.add(day, self.now_day, (name, district), 1, amount)

    def _holder_district(self, token: str) -> int:
        holder = self.holders.get(token)
        if holder:
            return holder[0]
        return self.unbanked[token][1] if token in self.unbanked else L.OTHER_INDEX

    def _see_cash_only(self, token: str, district: str, epoch_s: float) -> None:
        """A cash-only adult lives where they were first seen (earliest simulated time, whatever the
        read order)."""
        if token in self.holders:
            return
        seen = (epoch_s, L.district_index(district))
        before = self.unbanked.get(token)
        if before is not None and before <= seen:
            return
        if before is not None:
            self.unbanked_count[before[1]] -= 1
        self.unbanked[token] = seen
        self.unbanked_count[seen[1]] = self.unbanked_count.get(seen[1], 0) + 1

    def _see_holder(self, token: str, district: int, gender: str) -> None:
        if token in self.holders:
            return
        self.holders[token] = (district, gender)
        self.banked_count[(district, gender)] = self.banked_count.get((district, gender), 0) + 1
        was = self.unbanked.pop(token, None)
        if was is not None:
            self.unbanked_count[was[1]] -= 1

    # -- events --------------------------------------------------------------------------------
    def on_account(self, e: AccountOpened) -> None:
        """An account opened: remembers who holds it; a citizen holder now counts as included."""
        self._advance(e.occurred_at.timestamp())
        digital = bool(L.DIGITAL_INSTRUMENTS.intersection(e.accepted_instruments))
        district = L.district_index(e.district)
        self.accounts[e.account_id] = (e.kind, district, e.gender, e.holder_token, e.merchant_category, digital)
        if e.kind in L.CITIZEN_KINDS:
            self._see_holder(e.holder_token, district, e.gender or "other")

    def on_request(self, request_id: int, record_ts_ms: int) -> None:
        """A payment request's Kafka timestamp: observes the latency if its outcome was read first,
        else remembers it for the outcome (topics are read concurrently, in either order)."""
        key = id64(request_id)
        outcome_ms = self.pending_outcomes.pop(key, None)
        if outcome_ms is not None:
            self._observe_latency(outcome_ms - record_ts_ms)
        else:
            _remember(self.pending_requests, key, record_ts_ms)

    def on_outcome(self, e: PaymentSettled | PaymentRejected | PaymentExpired, record_ts_ms: int) -> bool:
        """A ledger outcome; False (and no effect) when it was read before or answers a duplicate request."""
        key = id64(e.event_id.int)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.seen_order.append(key)
        if len(self.seen_order) > DEDUPE_IDS_MAX:
            self.seen.discard(self.seen_order.popleft())
        if isinstance(e, PaymentExpired):
            return True  # the authorisation was counted at request; its release moves no payment figure
        if e.result in DUPLICATE_RESULTS:
            return False
        request_key = id64(e.request_event_id.int)
        sent_ms = self.pending_requests.pop(request_key, None)
        if sent_ms is not None:
            self._observe_latency(record_ts_ms - sent_ms)
        else:
            _remember(self.pending_outcomes, request_key, record_ts_ms)
        self._advance(e.request_occurred_at.timestamp())
        day = day_of(e.request_occurred_at.timestamp())
        settled = isinstance(e, PaymentSettled)
        if e.request_type in ("cash.in", "cash.out"):
            if settled:
                customer = e.payee_account_id if e.request_type == "cash.in" else e.payer_account_id
                self._flow(e.request_type.replace(".", "_"), self._district(customer), e.amount, day)
            return True
        if e.request_type != "payment.requested":
            # Post/void finish a payment counted when it was requested; a refund gives (part of) a
            # counted payment back and is no new digital payment.
            return True
        payer = self.accounts.get(e.payer_account_id)
        district = payer[1] if payer else L.OTHER_INDEX
        if settled and e.payee_account_id is not None:
            payee = self.accounts.get(e.payee_account_id)
            if payee is not None and payee[0] in L.CITIZEN_KINDS:
                self._flow("inflow", payee[1], e.amount, day)
        if e.kind not in L.RETAIL_KINDS:
            return True
        self._pay("digital", e.rail or "raast", district, "settled" if settled else "rejected", e.amount)
        if settled:
            self.window.add(day, self.now_day, ("pay", "digital", district), 1, e.amount)
            category = self._digital_category(e)
            if category is not None:
                self.window.add(day, self.now_day, ("accept", category, True), 1, e.amount)
            if payer is not None and payer[0] in L.CITIZEN_KINDS:
                self._mark_active(payer, day)
        return True

    def _district(self, account_id: str | None) -> int:
        account = self.accounts.get(account_id) if account_id else None
        return account[1] if account else L.OTHER_INDEX

    def _digital_category(self, e: PaymentSettled | PaymentRejected) -> str | None:
        if e.kind == "bill_payment":
            return "utility"
        if e.kind == "ecommerce":
            return "ecommerce"
        if e.kind in ("p2m_static_qr", "p2m_dynamic_qr"):
            payee = self.accounts.get(e.payee_account_id or "")
            return (payee[4] if payee else None) or "other"
        return None

    def _mark_active(self, payer: Account, day: int) -> None:
        holder = payer[3]
        previous = self.last_active.get(holder)
        if previous is not None and previous >= day:
            return
        key = (payer[1], payer[2] or "other")
        if previous is not None and previous in self.active_by_day:
            self.active_by_day[previous][key] -= 1
        self.last_active[holder] = day
        if day >= self.window.first_day(self.now_day):
            bucket = self.active_by_day.setdefault(day, {})
            bucket[key] = bucket.get(key, 0) + 1

    def _observe_latency(self, elapsed_ms: int) -> None:
        seconds = max(0.0, elapsed_ms / 1000)
        if seconds > LATENCY_MAX_S:
            return
        index = next((k for k, bound in enumerate(LATENCY_BUCKETS_S) if seconds <= bound), len(LATENCY_BUCKETS_S))
        self.latency_buckets[index] += 1
        self.latency_sum_s += seconds

    def on_cash_purchase(self, e: CashPurchase) -> None:
        """A purchase paid in cash: the cash side of the share; its payer is an adult seen."""
        epoch_s = e.occurred_at.timestamp()
        self._advance(epoch_s)
        self._see_cash_only(e.payer_token, e.district, epoch_s)
        self._cash_payment(L.district_index(e.district), e.amount, epoch_s, e.merchant_category, e.merchant_account_id)

    def _cash_payment(self, district: int, amount: int, epoch_s: float, category: str, merchant: str | None) -> None:
        day = day_of(epoch_s)
        self._pay("cash", L.CASH_RAIL, district, "cash", amount)
        self.window.add(day, self.now_day, ("pay", "cash", district), 1, amount)
        account = self.accounts.get(merchant) if merchant else None
        self.window.add(day, self.now_day, ("accept", category, bool(account and account[5])), 1, amount)

    def on_order(self, e: OrderPlaced | OrderPaidOnDelivery) -> None:
        """Orders: a buyer is an adult seen; cash on delivery is a cash payment (category ecommerce)."""
        self._advance(e.occurred_at.timestamp())
        if isinstance(e, OrderPlaced):
            self._see_cash_only(e.buyer_token, e.district, e.occurred_at.timestamp())
            return
        district = self._holder_district(e.buyer_token)
        self._cash_payment(district, e.amount, e.occurred_at.timestamp(), "ecommerce", e.seller_account_id)

    def on_dead_letter(self, reason: str) -> None:
        """One record on the dead-letter topic."""
        reason = reason if reason in L.DEAD_LETTER_REASONS else "schema_invalid"
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
