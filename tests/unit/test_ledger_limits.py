"""Wallet-tier limits and refunds in the ledger's pure rules (issue 9, items 4 and 7)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import get_args
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.ledger.domain import Ledger
from consumers.ledger.limits import Tier, Window
from consumers.ledger.outcomes import outcome_bytes
from consumers.ledger.reading import REQUEST_ADAPTER, fingerprint
from consumers.ledger.records import Account, Decision, Request, account_flags
from consumers.ledger.wire import from_model
from schemas.accounts import TIER_LIMITS, TIER_LIMITS_SOURCE, AccountOpened, TierLimits, WalletTier
from schemas.api.payments import FAILURE_MESSAGES
from schemas.events import dump_event, parse_event
from schemas.payments import (
    PaymentPostRequested,
    PaymentRejected,
    PaymentRequested,
    PaymentSettled,
    PaymentVoidRequested,
    RefundRequested,
)

START = datetime(2026, 3, 15, 12, tzinfo=UTC)
MERCHANT = "acc_0000000b"
CUSTOMER = "acc_0000000c"
WALLET = "acc_0000000d"
UNKNOWN = "acc_0000dead"
# Made-up limits whose every figure differs, so each test trips exactly one of them.
SMALL = TierLimits(transfer_max=100, daily_max=300, monthly_max=500, yearly_max=700, balance_max=1_000)
RICH = 10**12  # credits of an untiered business account: never short of money

_ids = itertools.count(1)


def _envelope(at: datetime) -> dict:
    return {"event_id": UUID(int=next(_ids)), "occurred_at": at, "producer": "test", "correlation_id": UUID(int=0)}


def _refund(payer: str, payee: str, amount: int, at: datetime = START) -> RefundRequested:
    return RefundRequested(
        **_envelope(at),
        payment_event_id=UUID(int=999),
        payer_account_id=payer,
        payee_account_id=payee,
        amount=amount,
        reference="order 17",
    )


def _ledger(accounts: dict[str, Account]) -> Ledger:
    """A ledger whose wall clock is far ahead: a test may jump months ahead (domain.timely)."""
    return Ledger(accounts=accounts, pending={}, prior={}, clocks={}, now=datetime(2100, 1, 1, tzinfo=UTC))


def _decide(ledger: Ledger, event: object) -> Decision:
    return ledger.decide(Request(from_model(event), 0, 0, fingerprint(from_model(event))))  # type: ignore[arg-type]


def test_a_refund_is_decided_as_a_transfer_from_its_payer_to_its_payee() -> None:
    """A refund moves money from the original payee back to the original payer, coded `refund`."""
    merchant = Account(MERCHANT, account_flags("citizen_wallet"), credits_posted=10_000)
    customer = Account(CUSTOMER, account_flags("citizen_wallet"))
    ledger = _ledger({MERCHANT: merchant, CUSTOMER: customer})
    decision = _decide(ledger, _refund(MERCHANT, CUSTOMER, 4_000))
    assert (decision.result, decision.status) == ("created", "posted")
    assert (merchant.debits_posted, customer.credits_posted) == (4_000, 4_000)
    (transfer,) = ledger.effects.transfers
    assert (transfer.code, transfer.debit_account_id, transfer.reference) == ("refund", MERCHANT, "order 17")


def test_a_refund_gets_the_transfer_result_codes() -> None:
    """Too little money, an unknown account or the same account twice: the transfer's codes."""
    merchant = Account(MERCHANT, account_flags("citizen_wallet"), credits_posted=1_000)
    ledger = _ledger({MERCHANT: merchant, CUSTOMER: Account(CUSTOMER)})
    assert _decide(ledger, _refund(MERCHANT, CUSTOMER, 1_001)).result == "exceeds_credits"
    assert _decide(ledger, _refund(MERCHANT, UNKNOWN, 1)).result == "account_not_found"
    assert _decide(ledger, _refund(MERCHANT, MERCHANT, 1)).result == "accounts_must_be_different"
    assert merchant.debits_posted == 0


def test_a_refund_outcome_parses_as_the_contract_says() -> None:
    """The outcome of a refund names the refund as its request, with no payment kind."""
    merchant = Account(MERCHANT, account_flags("citizen_wallet"), credits_posted=5)
    ledger = _ledger({MERCHANT: merchant, CUSTOMER: Account(CUSTOMER)})
    refund = _refund(MERCHANT, CUSTOMER, 5)
    key, value = outcome_bytes(_decide(ledger, refund))
    settled = parse_event(value)
    assert isinstance(settled, PaymentSettled)
    assert (key, settled.request_type, settled.request_event_id, settled.kind) == (
        MERCHANT,
        "payment.refund_requested",
        refund.event_id,
        None,
    )
    _, rejected_value = outcome_bytes(_decide(ledger, _refund(MERCHANT, CUSTOMER, 5)))
    rejected = parse_event(rejected_value)
    assert isinstance(rejected, PaymentRejected) and rejected.result == "exceeds_credits"


def test_a_refund_is_read_from_the_requests_topic() -> None:
    """The ledger's reader parses a refund request from its wire bytes."""
    refund = _refund(MERCHANT, CUSTOMER, 5)
    assert REQUEST_ADAPTER.validate_json(refund.model_dump_json()) == refund
    assert refund.partition_key == MERCHANT


# -- limits -------------------------------------------------------------------------------------


def _tiered(account_id: str, limits: TierLimits = SMALL, **balances: int) -> Account:
    account = Account(account_id, account_flags("citizen_wallet"), **balances)
    account.tier = Tier(limits, Window(), Window())
    return account


def _pay(payer: str, payee: str, amount: int, at: datetime = START, *, pending: bool = False) -> PaymentRequested:
    return PaymentRequested(
        **_envelope(at),
        kind="p2p",
        rail="wallet",
        payer_account_id=payer,
        payee_account_id=payee,
        amount=amount,
        pending=pending,
    )


def _payer_ledger(**balances: int) -> tuple[Ledger, Account]:
    """A tiered citizen wallet (SMALL limits, well funded) that pays an untiered merchant."""
    wallet = _tiered(WALLET, credits_posted=balances.get("credits_posted", 100_000))
    return _ledger({WALLET: wallet, MERCHANT: Account(MERCHANT)}), wallet


def _payee_ledger(**balances: int) -> tuple[Ledger, Account]:
    """A tiered citizen wallet (SMALL limits) paid by an untiered, well-funded merchant."""
    wallet = _tiered(WALLET, **balances)
    return _ledger({WALLET: wallet, MERCHANT: Account(MERCHANT, credits_posted=RICH)}), wallet


def _results(ledger: Ledger, events: list) -> list[str]:
    return [_decide(ledger, e).result for e in events]


def test_every_tier_has_a_row_and_the_sbp_figures_are_in_paisa() -> None:
    """The table covers every tier; levels 0 and 1 carry the 2016 regulations' figures, level 2 none."""
    assert set(TIER_LIMITS) == set(get_args(WalletTier))
    assert TIER_LIMITS["level_0"] == TierLimits(2_500_000, 2_500_000, 4_000_000, 20_000_000, 20_000_000)
    assert TIER_LIMITS["level_1"] == TierLimits(5_000_000, 5_000_000, 8_000_000, 80_000_000, 40_000_000)
    assert TIER_LIMITS["level_2"] is None
    assert TIER_LIMITS["test_capped"] == TierLimits(0, 0, 0, 0, 0)


def test_the_limits_source_is_recorded_with_the_calibrations() -> None:
    """The figures' source is listed, with its address, among the calibration's sources."""
    raw = json.loads(resources.files("producers.calibration").joinpath("kp.json").read_text())
    source = raw["sources"][TIER_LIMITS_SOURCE]
    assert "BPRD Circular No. 09 of 2016" in source
    assert (
        "https://propakistani.pk/2016/07/14/sbp-revises-transactions-limits-for-branchless-banking-accounts/" in source
    )


def test_the_limit_codes_have_messages_that_say_what_to_do() -> None:
    """The API explains both new rejections."""
    assert "limit" in FAILURE_MESSAGES["payer_limit_exceeded"]
    assert "limit" in FAILURE_MESSAGES["payee_limit_exceeded"]


def test_a_tier_is_optional_on_account_opened() -> None:
    """account.opened without a tier still parses (None: no limits); with one it keeps it."""
    opened = {
        "event_id": str(UUID(int=7)),
        "occurred_at": "2026-01-01T00:00:00Z",
        "producer": "test",
        "correlation_id": str(UUID(int=7)),
        "account_id": WALLET,
        "kind": "citizen_wallet",
        "holder_token": "cit_0000000d",
        "provider": "EPMB",
        "district": "Swat",
        "gender": "female",
    }
    assert AccountOpened.model_validate(opened).tier is None
    assert AccountOpened.model_validate({**opened, "tier": "level_0"}).tier == "level_0"
    assert AccountOpened.model_validate(opened).schema_version == 1
    # Written without `tier` when there is none: the bytes of existing producers do not change.
    assert b'"tier"' not in dump_event(AccountOpened.model_validate(opened))
    assert b'"tier":"level_0"' in dump_event(AccountOpened.model_validate({**opened, "tier": "level_0"}))


def test_a_payment_over_the_per_transfer_bound_is_refused() -> None:
    """The payer's per-transfer bound: 100 passes, 101 is payer_limit_exceeded and moves nothing."""
    ledger, wallet = _payer_ledger()
    assert _results(ledger, [_pay(WALLET, MERCHANT, 101), _pay(WALLET, MERCHANT, 100)]) == [
        "payer_limit_exceeded",
        "created",
    ]
    assert wallet.debits_posted == 100
    assert wallet.tier is not None and wallet.tier.debits == Window(START.date(), 100, 100, 100)


def test_the_daily_debit_limit_rolls_over_at_utc_midnight() -> None:
    """Three 100s fill the 300 day; the fourth waits for the next UTC day."""
    ledger, _ = _payer_ledger()
    night = datetime(2026, 3, 15, 23, 59, 59, tzinfo=UTC)
    events = [_pay(WALLET, MERCHANT, 100, night) for _ in range(4)] + [
        _pay(WALLET, MERCHANT, 100, night + timedelta(seconds=1))
    ]
    assert _results(ledger, events) == ["created", "created", "created", "payer_limit_exceeded", "created"]


def test_the_monthly_debit_limit_rolls_over_with_the_calendar_month() -> None:
    """500 a month over several days; the 1st of the next month starts afresh (the year does not)."""
    ledger, wallet = _payer_ledger()
    days = [datetime(2026, 3, d, tzinfo=UTC) for d in (1, 1, 1, 2, 2, 3)]
    events = [_pay(WALLET, MERCHANT, 100, at) for at in days] + [
        _pay(WALLET, MERCHANT, 100, datetime(2026, 4, 1, tzinfo=UTC))
    ]
    assert _results(ledger, events) == ["created"] * 5 + ["payer_limit_exceeded", "created"]
    assert wallet.tier is not None and wallet.tier.debits == Window(date(2026, 4, 1), 100, 100, 600)


def test_the_yearly_debit_limit_rolls_over_with_the_calendar_year() -> None:
    """700 a year across months; 1 January starts afresh."""
    ledger, wallet = _payer_ledger()
    months = [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4, 5, 6, 7, 8)]
    events = [_pay(WALLET, MERCHANT, 100, at) for at in months] + [
        _pay(WALLET, MERCHANT, 100, datetime(2027, 1, 1, tzinfo=UTC))
    ]
    assert _results(ledger, events) == ["created"] * 7 + ["payer_limit_exceeded", "created"]
    assert wallet.tier is not None and wallet.tier.debits == Window(date(2027, 1, 1), 100, 100, 100)


def test_credit_limits_bind_the_payee() -> None:
    """Incoming money has its own per-transfer and daily bounds: payee_limit_exceeded."""
    ledger, wallet = _payee_ledger()
    events = [_pay(MERCHANT, WALLET, 101)] + [_pay(MERCHANT, WALLET, 100) for _ in range(4)]
    assert _results(ledger, events) == ["payee_limit_exceeded", "created", "created", "created", "payee_limit_exceeded"]
    assert wallet.credits_posted == 300
    assert wallet.tier is not None and wallet.tier.credits.day == 300 and wallet.tier.debits == Window()


def test_debits_and_credits_are_counted_separately() -> None:
    """Spending a full day's debit limit leaves the day's credit limit untouched, and back."""
    ledger, wallet = _payer_ledger(credits_posted=400)  # the balance stays under the cap of 1,000
    ledger.accounts[MERCHANT].credits_posted = RICH
    spent = [_pay(WALLET, MERCHANT, 100) for _ in range(3)]
    received = [_pay(MERCHANT, WALLET, 100) for _ in range(3)]
    assert _results(ledger, [*spent, *received, _pay(WALLET, MERCHANT, 1), _pay(MERCHANT, WALLET, 1)]) == [
        *["created"] * 6,
        "payer_limit_exceeded",
        "payee_limit_exceeded",
    ]
    assert wallet.tier is not None and (wallet.tier.debits.day, wallet.tier.credits.day) == (300, 300)


def test_the_balance_cap_counts_incoming_reservations() -> None:
    """A credit that would lift the balance (posted, plus authorisations still to be captured) over
    the cap is refused; outgoing reservations do not lower the balance the cap sees."""
    ledger, _ = _payee_ledger(credits_posted=900, debits_pending=50)
    assert _decide(ledger, _pay(MERCHANT, WALLET, 100)).result == "created"  # 1,000 is the cap itself
    ledger, _ = _payee_ledger(credits_posted=850, credits_pending=60)
    assert _decide(ledger, _pay(MERCHANT, WALLET, 100)).result == "payee_limit_exceeded"
    ledger, wallet = _payee_ledger(credits_posted=950, debits_posted=60)
    assert _decide(ledger, _pay(MERCHANT, WALLET, 100)).result == "created"  # balance 890 + 100
    assert wallet.tier is not None and wallet.tier.credits.day == 100


def test_limits_come_after_unknown_accounts_and_before_funds() -> None:
    """An unknown payee is account_not_found even over a limit; an empty wallet over its limit is
    payer_limit_exceeded, not exceeds_credits."""
    ledger, _ = _payer_ledger(credits_posted=0)
    assert _decide(ledger, _pay(WALLET, UNKNOWN, 10_000)).result == "account_not_found"
    assert _decide(ledger, _pay(WALLET, MERCHANT, 101)).result == "payer_limit_exceeded"
    assert _decide(ledger, _pay(WALLET, MERCHANT, 100)).result == "exceeds_credits"


def test_a_rejected_transfer_counts_toward_no_limit() -> None:
    """Only created transfers count: refusals for want of funds leave the windows alone."""
    ledger, wallet = _payer_ledger(credits_posted=50)
    assert _results(ledger, [_pay(WALLET, MERCHANT, 100), _pay(WALLET, MERCHANT, 50)]) == ["exceeds_credits", "created"]
    assert wallet.tier is not None and wallet.tier.debits.day == 50
    assert ledger.effects.windows == {WALLET: wallet}


def test_an_authorisation_counts_when_made_and_a_void_gives_nothing_back() -> None:
    """A pending payment counts its whole amount at once; voiding it frees no limit."""
    ledger, wallet = _payer_ledger()
    authorisation = _pay(WALLET, MERCHANT, 100, pending=True)
    void = PaymentVoidRequested(**_envelope(START), pending_id=authorisation.event_id, payer_account_id=WALLET)
    post = PaymentPostRequested(**_envelope(START), pending_id=authorisation.event_id, payer_account_id=WALLET)
    assert _results(ledger, [authorisation, _pay(WALLET, MERCHANT, 100), void, post]) == [
        "created",
        "created",
        "created",
        "pending_transfer_already_voided",
    ]
    assert (wallet.debits_pending, wallet.debits_posted) == (0, 100)  # the void released the money...
    assert wallet.tier is not None and wallet.tier.debits.day == 200  # ...but not the limit
    assert _decide(ledger, _pay(WALLET, MERCHANT, 100)).result == "created"
    assert _decide(ledger, _pay(WALLET, MERCHANT, 1)).result == "payer_limit_exceeded"


def test_an_earlier_dated_transfer_counts_toward_the_current_window() -> None:
    """Windows never move backwards: a transfer dated the day before counts toward today."""
    ledger, wallet = _payer_ledger()
    yesterday = START - timedelta(days=1)
    events = [_pay(WALLET, MERCHANT, 100), _pay(WALLET, MERCHANT, 100, yesterday), _pay(WALLET, MERCHANT, 100)]
    assert _results(ledger, [*events, _pay(WALLET, MERCHANT, 100, yesterday)]) == [
        *["created"] * 3,
        "payer_limit_exceeded",
    ]
    assert wallet.tier is not None and wallet.tier.debits.on == START.date()


@pytest.mark.parametrize("kind", ["citizen_wallet", "merchant", "agent"])
def test_an_account_without_a_tier_has_no_limit(kind: str) -> None:
    """Untiered (and level_2) accounts move any amount their balance allows, and no window is written."""
    payer = Account(CUSTOMER, account_flags(kind), credits_posted=RICH)
    ledger = _ledger({CUSTOMER: payer, MERCHANT: Account(MERCHANT)})
    big = 10**11
    assert _results(ledger, [_pay(CUSTOMER, MERCHANT, big) for _ in range(5)]) == ["created"] * 5
    assert payer.debits_posted == 5 * big and ledger.effects.windows == {}


def test_level_0_takes_rs_25000_a_day_and_not_a_paisa_more() -> None:
    """The SBP figures as enforced: Rs 25,000 in a day passes; one paisa more the same day is refused."""
    wallet = _tiered(WALLET, TIER_LIMITS["level_0"] or SMALL, credits_posted=10**9)
    ledger = _ledger({WALLET: wallet, MERCHANT: Account(MERCHANT)})
    assert _results(
        ledger, [_pay(WALLET, MERCHANT, 2_500_001), _pay(WALLET, MERCHANT, 2_000_000), _pay(WALLET, MERCHANT, 500_000)]
    ) == [
        "payer_limit_exceeded",
        "created",
        "created",
    ]
    assert _decide(ledger, _pay(WALLET, MERCHANT, 1)).result == "payer_limit_exceeded"


def test_the_capped_test_tier_refuses_every_credit() -> None:
    """`test_capped` (the sandbox's magic payee) takes nothing: payee_limit_exceeded for 1 paisa."""
    capped = _tiered(WALLET, TIER_LIMITS["test_capped"] or SMALL)
    ledger = _ledger({WALLET: capped, MERCHANT: Account(MERCHANT, credits_posted=RICH)})
    assert _decide(ledger, _pay(MERCHANT, WALLET, 1)).result == "payee_limit_exceeded"
    assert capped.credits_posted == 0


def test_a_refund_is_bound_by_the_same_limits() -> None:
    """A refund into a tiered wallet counts toward its credit limits like any transfer."""
    ledger, wallet = _payee_ledger()
    assert _results(ledger, [_refund(MERCHANT, WALLET, 100) for _ in range(4)]) == [
        *["created"] * 3,
        "payee_limit_exceeded",
    ]
    assert wallet.tier is not None and wallet.tier.credits.day == 300


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 150)), min_size=1, max_size=60))
def test_created_debits_never_exceed_a_window_and_refusals_were_over_one(steps: list[tuple[int, int]]) -> None:
    """Against a model that sums created transfers by UTC day, month and year: the ledger creates
    exactly the transfers that fit every limit."""
    ledger, _ = _payer_ledger()
    at = datetime(2026, 12, 1, tzinfo=UTC)
    by_day: dict[date, int] = defaultdict(int)
    by_month: dict[tuple[int, int], int] = defaultdict(int)
    by_year: dict[int, int] = defaultdict(int)
    for hours, amount in steps:
        at += timedelta(hours=hours * 3)
        day, month, year = at.date(), (at.year, at.month), at.year
        fits = (
            amount <= SMALL.transfer_max
            and by_day[day] + amount <= SMALL.daily_max
            and by_month[month] + amount <= SMALL.monthly_max
            and by_year[year] + amount <= SMALL.yearly_max
        )
        assert _decide(ledger, _pay(WALLET, MERCHANT, amount, at)).result == (
            "created" if fits else "payer_limit_exceeded"
        )
        if fits:
            by_day[day] += amount
            by_month[month] += amount
            by_year[year] += amount
