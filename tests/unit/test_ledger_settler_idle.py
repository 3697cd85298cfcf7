"""`settle --until-idle` ends only when there is nothing left for the group: holding no partition
is idle only once the group has been joined (not mid-rebalance) and the group's offsets in the
database reach every partition's end — a member given nothing while the cluster's metadata is
still settling (a broker rejoining) must not take that for drained (the fresh-clone CI's cluster
test: a clean re-settle exited having settled nothing)."""

from __future__ import annotations

import pytest

from consumers.ledger.consumer import Settler
from infra.settings import Settings


@pytest.fixture
def settler(monkeypatch: pytest.MonkeyPatch) -> Settler:
    settler = Settler(Settings(topic_prefix="idle."))
    settler.group_backlog_empty = False  # type: ignore[attr-defined]

    async def group_drained() -> bool:
        return settler.group_backlog_empty  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(settler, "_group_drained", group_drained)
    return settler


async def test_holding_nothing_is_drained_only_when_the_groups_work_is_done(settler: Settler) -> None:
    assert not await settler._drained()  # never joined
    await settler.assigned([])
    assert not await settler._drained()  # given nothing, but requests wait: not idle
    settler.group_backlog_empty = True  # type: ignore[attr-defined]
    assert await settler._drained()


async def test_holding_nothing_after_a_revoke_is_not_drained_until_the_next_assignment(settler: Settler) -> None:
    settler.group_backlog_empty = True  # type: ignore[attr-defined]
    await settler.assigned([])
    assert await settler._drained()
    await settler.revoked([])
    assert not await settler._drained()  # mid-rebalance: its next share may be anything
    await settler.assigned([])
    assert await settler._drained()
