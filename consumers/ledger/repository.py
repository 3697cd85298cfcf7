"""The ledger's tables, one small function per statement; every call takes keyword arguments.

Each function runs on a connection the caller holds (inside the caller's transaction); none
commits on its own. Writes take whole arrays (unnest or COPY), never one row per statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from uuid import UUID

import asyncpg

from consumers.ledger import sql
from consumers.ledger.blobs import pack_payloads
from consumers.ledger.clock import ClockKey
from consumers.ledger.deadletter import Letter, letters_to_json
from consumers.ledger.limits import Tier, Window
from consumers.ledger.records import Account, Effects, Pending, RequestRecord
from schemas.accounts import TIER_LIMITS

EXPIRIES_PER_BATCH_MAX = 10_000  # due pending transfers one batch expires; the rest wait for the next


async def open_accounts(
    connection: asyncpg.Connection, *, rows: Sequence[tuple[str, str, int, datetime, str | None]]
) -> None:
    """Inserts accounts (id, kind, flags, opened_at, tier) that do not exist yet."""
    if rows:
        ids, kinds, flags, opened, tiers = zip(*rows, strict=True)
        await connection.execute(sql.INSERT_ACCOUNTS, list(ids), list(kinds), list(flags), list(opened), list(tiers))


async def lock_accounts(connection: asyncpg.Connection, *, ids: Iterable[str]) -> dict[str, Account]:
    """Loads and locks accounts in id order (the same order in every process: no deadlock)."""
    rows = await connection.fetch(sql.LOCK_ACCOUNTS, sorted(set(ids)))
    return {row["id"]: _account(row) for row in rows}


async def select_owners(connection: asyncpg.Connection, *, ids: Iterable[str]) -> dict[str, str]:
    """Account id -> owning tenant id, for accounts opened through the API (the economy's have none)."""
    rows = await connection.fetch(sql.SELECT_OWNERS, sorted(set(ids)))
    return {row["id"]: row["tenant_id"] for row in rows}


def _account(row: asyncpg.Record) -> Account:
    """An account row as the rules see it: a tier with limits gets its limits and windows.

    Columns by position (sql.LOCK_ACCOUNTS' order): this runs for every account of every batch."""
    account = Account(row[0], row[1], row[2], row[3], row[4], row[5])
    tier = row[6]
    limits = TIER_LIMITS.get(tier) if tier is not None else None
    if limits is not None:
        account.tier = Tier(
            limits,
            Window(row["debits_window_on"], row["debits_day"], row["debits_month"], row["debits_year"]),
            Window(row["credits_window_on"], row["credits_day"], row["credits_month"], row["credits_year"]),
        )
    return account


async def select_prior_requests(connection: asyncpg.Connection, *, ids: Sequence[UUID]) -> dict[UUID, RequestRecord]:
    """Requests already decided, by id (duplicate deliveries)."""
    rows = await connection.fetch(sql.SELECT_PRIOR_REQUESTS, ids)
    return {row["id"]: RequestRecord(**dict(row)) for row in rows}


async def lock_pending(
    connection: asyncpg.Connection, *, ids: Sequence[UUID], clocks: dict[ClockKey, datetime]
) -> dict[UUID, Pending]:
    """Loads and locks the pending transfers named by `ids` or due by the given producer clocks."""
    found: dict[UUID, Pending] = {}
    if ids:
        for row in await connection.fetch(sql.LOCK_PENDING_BY_ID, list(ids)):
            found[row["id"]] = Pending(*row)
    if clocks:
        keys = list(clocks)
        rows = await connection.fetch(
            sql.LOCK_PENDING_DUE,
            [p for p, _ in keys],
            [producer for _, producer in keys],
            [clocks[k] for k in keys],
            EXPIRIES_PER_BATCH_MAX,
        )
        for row in rows:
            found.setdefault(row["id"], Pending(*row))
    return found


async def select_clocks(
    connection: asyncpg.Connection, *, group: str, topic: str, partitions: Iterable[int]
) -> dict[ClockKey, datetime]:
    """Every producer's clock on the given partitions."""
    rows = await connection.fetch(sql.SELECT_CLOCKS, group, topic, sorted(partitions))
    return {(row["partition"], row["producer"]): row["clock"] for row in rows}


async def upsert_clocks(
    connection: asyncpg.Connection, *, group: str, topic: str, clocks: dict[ClockKey, datetime]
) -> None:
    """Stores producers' clocks (never backwards)."""
    if clocks:
        keys = sorted(clocks)
        await connection.execute(
            sql.UPSERT_CLOCKS, group, topic, [p for p, _ in keys], [r for _, r in keys], [clocks[k] for k in keys]
        )


async def write_effects(connection: asyncpg.Connection, *, effects: Effects) -> None:
    """Writes a batch's transfers, requests, pending transfers and balance deltas."""
    if effects.transfers:
        # Transfer and RequestRecord are NamedTuples in table-column order: rows as they are.
        await connection.copy_records_to_table(
            "ledger_transfers", records=effects.transfers, columns=sql.TRANSFER_COLUMNS
        )
    if effects.requests:
        await connection.copy_records_to_table("ledger_requests", records=effects.requests, columns=sql.REQUEST_COLUMNS)
    await _write_pending(connection, effects=effects)
    if effects.deltas:
        ids = sorted(effects.deltas)
        columns = [[effects.deltas[i][k] for i in ids] for k in range(4)]
        await connection.execute(sql.APPLY_DELTAS, ids, *columns)
    if effects.windows:
        await _write_windows(connection, accounts=[effects.windows[i] for i in sorted(effects.windows)])


async def _write_windows(connection: asyncpg.Connection, *, accounts: list[Account]) -> None:
    """Writes tiered accounts' running totals as they stand after the batch."""
    rows = []
    for account in accounts:
        assert account.tier is not None, account.id  # only tiered accounts' windows move
        rows.append((account.id, *_totals(account.tier.debits), *_totals(account.tier.credits)))
    columns = [list(c) for c in zip(*rows, strict=True)]
    status = await connection.execute(sql.UPDATE_WINDOWS, *columns)
    assert status == f"UPDATE {len(rows)}", (status, len(rows))


async def _write_pending(connection: asyncpg.Connection, *, effects: Effects) -> None:
    new_ids = {p.id for p in effects.new_pending}
    if effects.new_pending:
        # New rows are written with their final state of this batch (one may be posted already).
        await connection.copy_records_to_table(
            "ledger_pending",
            records=[
                (
                    p.id,
                    p.debit_account_id,
                    p.credit_account_id,
                    p.amount,
                    p.code,
                    p.expires_at,
                    p.source_partition,
                    p.state,
                    p.source_producer,
                    p.correlation_id,
                    p.requested_at,
                    p.rail,
                )
                for p in effects.new_pending
            ],
            columns=sql.PENDING_COLUMNS,
        )
    changed = [(i, s) for i, s in effects.pending_states.items() if i not in new_ids]
    if changed:
        ids, states = zip(*changed, strict=True)
        status = await connection.execute(sql.UPDATE_PENDING_STATES, list(ids), list(states))
        assert status == f"UPDATE {len(changed)}", (status, len(changed))


def _totals(window: Window) -> tuple[date | None, int, int, int]:
    """A window's columns in table order."""
    return window.on, window.day, window.month, window.year


async def ensure_offsets(
    connection: asyncpg.Connection, *, group: str, topic: str, starts: dict[int, int]
) -> dict[int, tuple[int, datetime | None]]:
    """Creates missing offset rows at `starts`; returns (next_offset, clock) per partition."""
    parts = sorted(starts)
    await connection.execute(sql.ENSURE_OFFSETS, group, topic, parts, [starts[p] for p in parts])
    rows = await connection.fetch(sql.SELECT_OFFSETS, group, topic, parts)
    return {row["partition"]: (row["next_offset"], row["clock"]) for row in rows}


async def lock_offsets(
    connection: asyncpg.Connection, *, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, tuple[int, datetime | None]]:
    """Locks the batch's offset rows (partition order); returns (next_offset, clock) per partition."""
    rows = await connection.fetch(sql.LOCK_OFFSETS, group, topic, sorted(partitions))
    return {row["partition"]: (row["next_offset"], row["clock"]) for row in rows}


async def advance_offsets(
    connection: asyncpg.Connection,
    *,
    group: str,
    topic: str,
    rows: Sequence[tuple[int, int, datetime | None, int, int, int]],
) -> None:
    """Moves offsets forward: (partition, next_offset, clock, messages, duplicates, dead_lettered)."""
    columns = [list(c) for c in zip(*rows, strict=True)]
    await connection.execute(sql.ADVANCE_OFFSETS, group, topic, *columns)


async def advance_account_offsets(
    connection: asyncpg.Connection, *, group: str, topic: str, next_offsets: dict[int, int]
) -> None:
    """Records how far the accounts topic has been read (never backwards)."""
    parts = sorted(next_offsets)
    await connection.execute(sql.ADVANCE_ACCOUNT_OFFSETS, group, topic, parts, [next_offsets[p] for p in parts])


async def insert_outbox(
    connection: asyncpg.Connection, *, keys: list[str], payloads: list[bytes], letters: list[Letter]
) -> int | None:
    """Stores a batch's outcomes (compressed, blobs.py) and dead letters for the relay; returns the
    row id (None if nothing). Compressing releases the GIL, so it runs on a thread while the event
    loop parses the next fetch (a row of dead letters only has nothing to compress)."""
    if not keys and not letters:
        return None
    blob, size = await asyncio.to_thread(pack_payloads, payloads) if payloads else pack_payloads(payloads)
    return await connection.fetchval(
        sql.INSERT_OUTBOX, len(keys), "\n".join(keys), blob, size, letters_to_json(letters)
    )
