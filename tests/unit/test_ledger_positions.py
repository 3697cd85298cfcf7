"""The settler's positions: one owner, forward only, stale batches ignored, markers skippable."""

from __future__ import annotations

import pytest

from consumers.ledger.positions import Positions, check_within_log
from infra.errors import SandboxError


def test_a_partition_ending_in_a_marker_reaches_its_end() -> None:
    """The fetch position past a commit marker is skippable, and settling it drains the partition."""
    positions = Positions()
    positions.assign(0, committed=10)
    positions.fetched_to(0, 14)  # records 10..12 were handed out, 13 is a transaction marker
    positions.claim(0, 13)
    assert positions.unread({0: 14}) == set()
    assert not positions.drained({0: 14})
    skips = positions.skippable([0])
    assert skips == {0: 14}
    assert positions.skippable([0]) == {}  # claimed: not handed out twice
    assert positions.settled(0, 14, epoch=positions.epoch)
    assert positions.drained({0: 14}) and positions.behind({0: 14}) == {0: 0}


def test_a_batch_read_before_a_seek_cannot_move_the_committed_offset() -> None:
    """A resync (new epoch) makes an older batch's result stale; the database's word stands."""
    positions = Positions()
    positions.assign(3, committed=100)
    old_epoch = positions.epoch
    positions.fetched_to(3, 200)
    positions.assign(3, committed=150)  # re-seeked to the database after an outage
    assert not positions.settled(3, 200, epoch=old_epoch)
    assert positions.committed(3) == 150 and positions.fetched(3) == 150


def test_a_revoked_partition_is_forgotten() -> None:
    """After a revoke nothing about the partition is kept or accepted."""
    positions = Positions()
    positions.assign(1, committed=5)
    positions.revoke(1)
    positions.fetched_to(1, 9)
    assert 1 not in positions and not positions.settled(1, 9, epoch=positions.epoch)
    assert positions.drained({}) and positions.assigned() == []


def test_unknown_ends_count_as_unread() -> None:
    """Before the first fetch response a partition's end is unknown: the merge must wait for it."""
    positions = Positions()
    positions.assign(0, committed=0)
    assert positions.unread({0: None}) == {0}


@pytest.mark.parametrize(
    ("committed", "start", "end", "words"),
    [(50, 0, 10, "ends at offset 10"), (3, 7, 20, "deleted by retention")],
)
def test_offsets_the_log_cannot_serve_are_refused(committed: int, start: int, end: int, words: str) -> None:
    """A stored offset past the end (Kafka wiped) or before the start (retention) is a two-line error."""
    with pytest.raises(SandboxError, match=words) as raised:
        check_within_log("kp.payments.requests.v1", 2, committed, start, end)
    assert raised.value.hint


def test_offsets_within_the_log_pass() -> None:
    """The start and the end themselves are valid positions."""
    check_within_log("t", 0, 0, 0, 0)
    check_within_log("t", 0, 10, 0, 10)
