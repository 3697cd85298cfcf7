"""The metrics consumer's saved state in PostgreSQL: one row of (state, offsets) per group.

Saving writes both in one statement, so the offsets always describe exactly the saved state. An
advisory lock per group keeps a second metrics consumer of the same group from running.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

import asyncpg

LOAD: Final = """
SELECT state, offsets FROM metrics_state WHERE consumer_group = $1 AND topic_prefix = $2
"""
SAVE: Final = """
INSERT INTO metrics_state (consumer_group, topic_prefix, state, offsets, saved_at)
VALUES ($1, $2, $3, $4::jsonb, now())
ON CONFLICT (consumer_group, topic_prefix)
DO UPDATE SET state = EXCLUDED.state, offsets = EXCLUDED.offsets, saved_at = EXCLUDED.saved_at
"""
TRY_LOCK: Final = "SELECT pg_try_advisory_lock($1)"

Offsets = dict[str, dict[int, int]]  # topic -> partition -> next offset


@dataclass(frozen=True)
class Saved:
    """A saved state blob and the offsets it covers."""

    state: bytes
    offsets: Offsets


def lock_key(group: str, prefix: str) -> int:
    """A stable signed 64-bit advisory-lock key for one group and topic prefix."""
    digest = hashlib.blake2b(f"kpsandbox-metrics:{group}:{prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class MetricsStore:
    """Reads and writes the metrics_state row of one consumer group and topic prefix."""

    def __init__(self, connection: asyncpg.Connection, *, group: str, prefix: str) -> None:
        self.connection = connection
        self.group = group
        self.prefix = prefix

    async def try_lock(self) -> bool:
        """Takes the group's advisory lock for this session; False when another process holds it."""
        return bool(await self.connection.fetchval(TRY_LOCK, lock_key(self.group, self.prefix)))

    async def load(self) -> Saved | None:
        """The saved state, or None on a first run."""
        row = await self.connection.fetchrow(LOAD, self.group, self.prefix)
        if row is None:
            return None
        offsets = json.loads(row["offsets"])
        return Saved(bytes(row["state"]), {t: {int(p): o for p, o in ps.items()} for t, ps in offsets.items()})

    async def save(self, *, state: bytes, offsets: Offsets) -> None:
        """Writes state and offsets together (one statement, one transaction)."""
        await self.connection.execute(SAVE, self.group, self.prefix, state, json.dumps(offsets))
