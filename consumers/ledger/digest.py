"""The ledger digest: SHA-256 over every transfer in id order, independent of how it was batched.

Only fields that follow from the event stream are hashed (never offsets, batch numbers or wall
time), so replaying the same stream into an empty database reproduces the digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import asyncpg

DIGEST_FETCH_ROWS: Final = 10_000

SELECT_TRANSFERS_IN_ORDER: Final = """
SELECT id, debit_account_id, credit_account_id, amount, currency, code, rail, pending_id,
       timeout_seconds, flags, occurred_at
FROM ledger_transfers ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class Digest:
    """The hex SHA-256 and how many transfers it covers."""

    sha256: str
    transfers: int


def canonical_line(row: asyncpg.Record) -> bytes:
    """One transfer as a canonical text line (ISO-8601 UTC times, empty string for NULL)."""
    fields = [
        str(row["id"]),
        row["debit_account_id"],
        row["credit_account_id"],
        str(row["amount"]),
        row["currency"],
        row["code"],
        row["rail"] or "",
        str(row["pending_id"] or ""),
        str(row["timeout_seconds"]),
        str(row["flags"]),
        row["occurred_at"].isoformat(),
    ]
    return ("|".join(fields) + "\n").encode()


async def ledger_digest(connection: asyncpg.Connection) -> Digest:
    """Streams the transfers through SHA-256 with a server-side cursor (memory stays flat)."""
    sha = hashlib.sha256()
    count = 0
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(SELECT_TRANSFERS_IN_ORDER, prefetch=DIGEST_FETCH_ROWS):
            sha.update(canonical_line(row))
            count += 1
    return Digest(sha.hexdigest(), count)
