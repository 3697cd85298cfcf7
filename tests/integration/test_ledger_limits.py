"""Wallet-tier limits and refunds on real Kafka and PostgreSQL, across two runs of the ledger.

A client opens a level_0 wallet (SBP: Rs 25,000 a day, Rs 40,000 a month, each way), tops it up
at an agent, pays a merchant and is refunded; the ledger runs as its own process twice (a
restart between the runs), so the running totals it refuses by must come from its own tables.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from infra.settings import Settings
from schemas.accounts import TIER_LIMITS
from schemas.topics import PAYMENT_REQUESTS
from tests.integration.contract_support import (
    account_opened,
    agent_cash,
    envelope,
    fetch,
    ledger_check,
    new_account_id,
    one_answer,
    open_accounts,
    outcomes,
    payment,
    produce,
    schema_errors,
    settled_ok,
)

DAY_1 = datetime(2026, 3, 30, 9, tzinfo=UTC)  # two days before a new month: day and month roll over
RUPEE = 100
WINDOW_COLUMNS = """
SELECT tier, debits_window_on, debits_day, debits_month, debits_year,
       credits_window_on, credits_day, credits_month, credits_year
FROM ledger_accounts WHERE id = $1
"""


def _refund(payer: str, payee: str, amount: int, at: datetime) -> dict[str, Any]:
    """A `payment.refund_requested` the way a client writes it from docs/schemas."""
    return {
        "event_type": "payment.refund_requested",
        **envelope(at),
        "payment_event_id": envelope(at)["event_id"],
        "payer_account_id": payer,
        "payee_account_id": payee,
        "amount": amount,
        "reference": "refund-1",
    }


def _minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=m) for m in range(count)]


def _results(found: list[dict[str, Any]], requests: list[dict[str, Any]]) -> list[str]:
    return [str(one_answer(found, r)["result"]) for r in requests]


def _windows(config: Settings, account_id: str) -> Mapping[str, Any]:
    (row,) = fetch(config, WINDOW_COLUMNS, account_id)
    return dict(row)


def test_a_level_0_wallet_is_held_to_its_limits_across_restarts(fresh_settings: Settings) -> None:
    """Day, month and per-transfer limits on both sides, a refund and a capped wallet: the outcome
    codes are the documented ones, and the totals persist from one ledger run to the next."""
    assert TIER_LIMITS["level_0"] is not None and TIER_LIMITS["level_0"].daily_max == 25_000 * RUPEE
    rng = random.Random(9)
    wallet, capped, agent, merchant = (new_account_id(rng) for _ in range(4))
    open_accounts(
        fresh_settings,
        [
            account_opened(wallet, "citizen_wallet", gender="female", tier="level_0"),
            account_opened(capped, "citizen_wallet", gender="male", tier="test_capped"),
            account_opened(agent, "agent"),
            account_opened(merchant, "merchant", merchant_category="kiryana"),
        ],
    )
    t = _minutes(DAY_1, 8)
    first = [
        agent_cash("cash.in", wallet, agent, 20_000 * RUPEE, t[0]),  # credits today: 20,000
        agent_cash("cash.in", wallet, agent, 6_000 * RUPEE, t[1]),  # 26,000 > 25,000 a day
        agent_cash("cash.in", wallet, agent, 5_000 * RUPEE, t[2]),  # exactly 25,000
        payment(wallet, merchant, 25_000 * RUPEE + 1, t[3]),  # over the per-transfer bound
        payment(wallet, merchant, 15_000 * RUPEE, t[4]),
        _refund(merchant, wallet, 3_000 * RUPEE, t[5]),  # a refund is a credit like any other
        agent_cash("cash.in", capped, agent, 1, t[6]),  # the sandbox's capped wallet takes nothing
    ]
    assert [schema_errors(r) for r in first] == [[]] * len(first)
    produce(fresh_settings, PAYMENT_REQUESTS, first)
    settled_ok(fresh_settings)
    assert _results(outcomes(fresh_settings), first) == [
        "created",
        "payee_limit_exceeded",
        "created",
        "payer_limit_exceeded",
        "created",
        "payee_limit_exceeded",
        "payee_limit_exceeded",
    ]
    assert _windows(fresh_settings, wallet) == {
        "tier": "level_0",
        "debits_window_on": date(2026, 3, 30),
        "debits_day": 15_000 * RUPEE,
        "debits_month": 15_000 * RUPEE,
        "debits_year": 15_000 * RUPEE,
        "credits_window_on": date(2026, 3, 30),
        "credits_day": 25_000 * RUPEE,
        "credits_month": 25_000 * RUPEE,
        "credits_year": 25_000 * RUPEE,
    }

    day_2 = _minutes(DAY_1 + timedelta(days=1), 6)
    next_month = _minutes(datetime(2026, 4, 1, 9, tzinfo=UTC), 2)
    second = [
        agent_cash("cash.in", wallet, agent, 20_000 * RUPEE, day_2[0]),  # a new day, but 45,000 this month
        agent_cash("cash.in", wallet, agent, 15_000 * RUPEE, day_2[1]),  # exactly 40,000 this month
        _refund(merchant, wallet, 1, day_2[2]),
        payment(wallet, merchant, 10_000 * RUPEE, day_2[3]),  # debits: a new day, 25,000 this month
        payment(wallet, merchant, 15_000 * RUPEE, day_2[4]),  # 40,000 this month; the balance is now 0
        payment(wallet, merchant, 1, day_2[5]),  # a limit is refused before funds are looked at
        agent_cash("cash.in", wallet, agent, 10_000 * RUPEE, next_month[0]),  # April: all rolled over
        payment(wallet, merchant, 10_000 * RUPEE, next_month[1]),
    ]
    produce(fresh_settings, PAYMENT_REQUESTS, second)
    settled_ok(fresh_settings)  # a new process: only the database remembers the first run's totals
    assert _results(outcomes(fresh_settings), second) == [
        "payee_limit_exceeded",
        "created",
        "payee_limit_exceeded",
        "created",
        "created",
        "payer_limit_exceeded",
        "created",
        "created",
    ]
    assert _windows(fresh_settings, wallet) == {
        "tier": "level_0",
        "debits_window_on": date(2026, 4, 1),
        "debits_day": 10_000 * RUPEE,
        "debits_month": 10_000 * RUPEE,
        "debits_year": 50_000 * RUPEE,
        "credits_window_on": date(2026, 4, 1),
        "credits_day": 10_000 * RUPEE,
        "credits_month": 10_000 * RUPEE,
        "credits_year": 50_000 * RUPEE,
    }
    assert fetch(fresh_settings, "SELECT count(*) AS n FROM ledger_transfers WHERE code = 'refund'")[0]["n"] == 0
    balances = fetch(
        fresh_settings, "SELECT credits_posted - debits_posted AS balance FROM ledger_accounts WHERE id = $1", wallet
    )
    assert balances[0]["balance"] == 0
    check = ledger_check(fresh_settings)
    assert check.returncode == 0, check.stdout + check.stderr
