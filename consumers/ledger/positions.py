"""Where each assigned partition stands: the one owner, and only writer, of the settler's positions.

Per partition (the picture is in docs/ledger.md, "The consumer loop"):

    unassigned ──assign(committed)──▶ reading ──revoke──▶ unassigned
                       ▲                 │
                       └──── resync ◀────┘   (database or broker outage: seek to the database again)

While reading, two offsets move forward only:
- `committed`: the next offset the *database* says is settled. It is the truth; it moves only by
  `settled()`, after a batch's transaction committed.
- `fetched`: the Kafka consumer's position after the last fetch. Everything before it is in the
  merge buffer, settled, or was never a record for us (transaction markers and aborted records
  under read_committed). It is the position, never the last record's offset + 1, so a partition
  that ends in a marker still reaches its end offset.

Invariant: committed <= fetched. Every seek (assign, resync) bumps `epoch`: a batch read before it
may still commit (the database fences it if another process moved on), but it can no longer move
`committed` here, because the seek already read the database's newer word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from infra.errors import SandboxError


@dataclass(slots=True)
class PartitionPosition:
    """One assigned partition's two offsets."""

    committed: int
    fetched: int
    claimed: int  # the end of what was handed to a batch (settling, or settled)
    since: int  # the epoch of its last seek (assign, resync)


class Positions:
    """The assigned partitions and their offsets; rebalance callbacks and the loop call only these methods."""

    def __init__(self) -> None:
        self._partitions: dict[int, PartitionPosition] = {}
        self.epoch = 0

    def assign(self, partition: int, committed: int) -> None:
        """The partition was (re)assigned and the consumer seeked to the database's offset."""
        self.epoch += 1
        self._partitions[partition] = PartitionPosition(committed, committed, committed, self.epoch)

    def revoke(self, partition: int) -> None:
        """The partition is no longer ours."""
        self._partitions.pop(partition, None)

    def __contains__(self, partition: object) -> bool:
        return partition in self._partitions

    def __len__(self) -> int:
        return len(self._partitions)

    def assigned(self) -> list[int]:
        """Assigned partitions, in order."""
        return sorted(self._partitions)

    def sought_at(self, partition: int) -> int | None:
        """The epoch of the partition's last seek; None when it is not assigned. Records fetched
        before a later seek of it are stale (they are read again from there)."""
        state = self._partitions.get(partition)
        return None if state is None else state.since

    def committed(self, partition: int) -> int:
        """Where the database says the partition stands."""
        return self._partitions[partition].committed

    def fetched(self, partition: int) -> int:
        """Where the Kafka consumer's fetch position stands."""
        return self._partitions[partition].fetched

    def fetched_to(self, partition: int, position: int) -> None:
        """Records the consumer's position after a fetch (ignored for a partition no longer ours)."""
        state = self._partitions.get(partition)
        if state is not None and position > state.fetched:
            state.fetched = position

    def claim(self, partition: int, next_offset: int) -> None:
        """Offsets before `next_offset` were handed to a batch (so they are not skipped again)."""
        state = self._partitions.get(partition)
        if state is not None and next_offset > state.claimed:
            state.claimed = next_offset

    def settled(self, partition: int, next_offset: int, *, epoch: int) -> bool:
        """A batch read in `epoch` committed up to `next_offset`; False when it is stale here."""
        state = self._partitions.get(partition)
        if state is None or epoch != self.epoch:
            return False
        assert next_offset <= state.fetched or next_offset == state.committed, (partition, next_offset, state)
        state.committed = max(state.committed, next_offset)
        return True

    def unread(self, ends: Mapping[int, int | None]) -> set[int]:
        """Partitions whose fetch position has not reached `ends` (unknown ends count as unread)."""
        return {p for p, s in self._partitions.items() if ends.get(p) is None or s.fetched < ends[p]}  # type: ignore[operator]

    def behind(self, ends: Mapping[int, int]) -> dict[int, int]:
        """Messages each partition's committed offset is behind `ends` (its lag)."""
        return {p: max(0, ends[p] - s.committed) for p, s in self._partitions.items() if p in ends}

    def drained(self, ends: Mapping[int, int]) -> bool:
        """True when every assigned partition's committed offset reached its end offset."""
        return all(p in ends and s.committed >= ends[p] for p, s in self._partitions.items())

    def skippable(self, partitions: Iterable[int]) -> dict[int, int]:
        """Fetch positions of the given (empty-buffered) partitions that are ahead of everything
        handed to a batch: only transaction markers or aborted records lie in between. Claims them."""
        skips: dict[int, int] = {}
        for partition in partitions:
            state = self._partitions.get(partition)
            if state is not None and state.fetched > max(state.claimed, state.committed):
                skips[partition] = state.claimed = state.fetched
        return skips


def check_within_log(topic: str, partition: int, committed: int, start: int, end: int) -> None:
    """Refuses a stored offset the log cannot serve: Kafka was wiped, or records were deleted unread."""
    if committed > end:
        raise SandboxError(
            f"the database says {topic} partition {partition} is settled up to offset {committed}, "
            f"but that partition ends at offset {end}: Kafka was wiped or this is another cluster",
            "settle into a fresh database (KPSANDBOX_DATABASE_URL) or use a new topic prefix; "
            "the old ledger stays readable for `kpsandbox ledger check`",
        )
    if committed < start:
        raise SandboxError(
            f"{topic} partition {partition} starts at offset {start}, but the ledger has only settled "
            f"up to {committed}: {start - committed} requests were deleted by retention before they were read",
            "replay the stream from an archive into a fresh database, or accept the gap by settling "
            "into a fresh database with a new consumer group",
        )
