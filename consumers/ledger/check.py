"""Reconciliation: the ledger's invariants, checked from the database alone.

Each check is one SQL statement (named below) and yields a `Finding`. A ledger is healthy when
every finding holds; `kpsandbox ledger check` prints them and exits 1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

from consumers.ledger.consumer import GROUP_DEFAULT
from schemas.money import format_paisa

SAMPLE_ROWS_MAX: Final = 5

TOTALS: Final = """
SELECT 'PKR' AS currency,
       coalesce(sum(debits_posted), 0)::bigint   AS debits_posted,
       coalesce(sum(credits_posted), 0)::bigint  AS credits_posted,
       coalesce(sum(debits_pending), 0)::bigint  AS debits_pending,
       coalesce(sum(credits_pending), 0)::bigint AS credits_pending,
       count(*) AS accounts
FROM ledger_accounts
"""

# Replays every transfer into per-account balances and compares them with the stored ones.
BALANCE_MISMATCHES: Final = """
WITH legs AS (
    SELECT debit_account_id AS debit, credit_account_id AS credit, 0::bigint AS pending, amount AS posted
    FROM ledger_transfers WHERE flags = 0
    UNION ALL
    SELECT debit_account_id, credit_account_id, amount, 0 FROM ledger_transfers WHERE flags = 1
    UNION ALL
    SELECT t.debit_account_id, t.credit_account_id, -p.amount, CASE WHEN t.flags = 2 THEN t.amount ELSE 0 END
    FROM ledger_transfers AS t JOIN ledger_transfers AS p ON p.id = t.pending_id AND p.flags = 1
    WHERE t.flags IN (2, 4, 8)
), replayed AS (
    SELECT id, sum(dp)::bigint AS dp, sum(dpo)::bigint AS dpo, sum(cp)::bigint AS cp, sum(cpo)::bigint AS cpo FROM (
        SELECT debit AS id, pending AS dp, posted AS dpo, 0 AS cp, 0 AS cpo FROM legs
        UNION ALL
        SELECT credit, 0, 0, pending, posted FROM legs
    ) AS each_side GROUP BY id
)
SELECT coalesce(a.id, r.id) AS id,
       a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
       r.dp AS replayed_dp, r.dpo AS replayed_dpo, r.cp AS replayed_cp, r.cpo AS replayed_cpo
FROM ledger_accounts AS a FULL JOIN replayed AS r ON r.id = a.id
WHERE a.id IS NULL
   OR a.debits_pending  <> coalesce(r.dp, 0) OR a.debits_posted  <> coalesce(r.dpo, 0)
   OR a.credits_pending <> coalesce(r.cp, 0) OR a.credits_posted <> coalesce(r.cpo, 0)
ORDER BY 1
"""

ORPHAN_TRANSFERS: Final = """
SELECT t.id FROM ledger_transfers AS t
LEFT JOIN ledger_transfers AS p ON p.id = t.pending_id AND p.flags = 1
WHERE t.flags IN (2, 4, 8) AND p.id IS NULL
ORDER BY 1
"""

OVERDRAWN: Final = """
SELECT id, debits_pending + debits_posted - credits_posted AS overdrawn_by FROM ledger_accounts
WHERE flags & 2 <> 0 AND debits_pending + debits_posted > credits_posted
ORDER BY 1
"""

CONSUMED: Final = """
SELECT coalesce(sum(messages), 0)::bigint AS messages, coalesce(sum(duplicates), 0)::bigint AS duplicates,
       coalesce(sum(dead_lettered), 0)::bigint AS dead_lettered
FROM ledger_offsets WHERE topic = $1 AND consumer_group = $2
"""
DECIDED: Final = "SELECT count(*) FROM ledger_requests"

# Every request settled as `created` has its transfer; every transfer but an expiry has its request.
UNMATCHED: Final = """
SELECT coalesce(r.id, t.id) AS id FROM
    (SELECT id FROM ledger_requests WHERE result = 'created') AS r
    FULL JOIN (SELECT id FROM ledger_transfers WHERE flags <> 8) AS t ON t.id = r.id
WHERE r.id IS NULL OR t.id IS NULL
ORDER BY 1
"""
UNPUBLISHED: Final = "SELECT count(*), coalesce(sum(messages), 0)::bigint FROM ledger_outbox"


@dataclass(frozen=True, slots=True)
class Finding:
    """One invariant: whether it holds and what was measured."""

    name: str
    holds: bool
    detail: str


async def _sample(connection: asyncpg.Connection, query: str) -> tuple[int, list[str]]:
    rows = await connection.fetch(query)
    return len(rows), [str(row[0]) for row in rows[:SAMPLE_ROWS_MAX]]


async def check_ledger(
    connection: asyncpg.Connection, *, requests_topic: str, group: str = GROUP_DEFAULT
) -> list[Finding]:
    """Runs every reconciliation check, in one repeatable-read snapshot. The "one outcome per
    request" accounting counts only `group`'s offsets: another group that replayed the same topic
    into this database read the same requests again, and adding its counts would break the sum."""
    findings: list[Finding] = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        totals = await connection.fetchrow(TOTALS)
        posted_ok = totals["debits_posted"] == totals["credits_posted"]
        pending_ok = totals["debits_pending"] == totals["credits_pending"]
        findings.append(
            Finding(
                f"total debits = total credits ({totals['currency']})",
                posted_ok and pending_ok,
                f"posted {format_paisa(totals['debits_posted'])} / {format_paisa(totals['credits_posted'])}, "
                f"pending {format_paisa(totals['debits_pending'])} / {format_paisa(totals['credits_pending'])} "
                f"over {totals['accounts']} accounts",
            )
        )
        count, sample = await _sample(connection, BALANCE_MISMATCHES)
        findings.append(
            Finding("every balance = sum of its transfers", count == 0, _detail(count, sample, "accounts differ"))
        )
        count, sample = await _sample(connection, ORPHAN_TRANSFERS)
        findings.append(
            Finding("every post/void/expiry names a pending transfer", count == 0, _detail(count, sample, "orphans"))
        )
        count, sample = await _sample(connection, OVERDRAWN)
        findings.append(
            Finding("no citizen account overdrawn", count == 0, _detail(count, sample, "accounts overdrawn"))
        )
        consumed = await connection.fetchrow(CONSUMED, requests_topic, group)
        decided = await connection.fetchval(DECIDED)
        distinct = consumed["messages"] - consumed["duplicates"] - consumed["dead_lettered"]
        findings.append(
            Finding(
                "every consumed request has exactly one outcome",
                distinct == decided,
                f"{consumed['messages']} consumed by {group} = {decided} decided + {consumed['duplicates']} duplicates "
                f"+ {consumed['dead_lettered']} dead-lettered" + ("" if distinct == decided else "  ✗"),
            )
        )
        count, sample = await _sample(connection, UNMATCHED)
        findings.append(
            Finding("every created request has its transfer", count == 0, _detail(count, sample, "unmatched"))
        )
        rows, outcomes = await connection.fetchrow(UNPUBLISHED)
        findings.append(
            Finding(
                "every outcome published",
                rows == 0,
                "outbox empty" if rows == 0 else f"{outcomes} outcomes in {rows} outbox rows wait for `settle`",
            )
        )
    return findings


def _detail(count: int, sample: list[str], what: str) -> str:
    if count == 0:
        return "none"
    return f"{count} {what}, e.g. {', '.join(sample)}"
