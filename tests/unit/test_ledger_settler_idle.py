"""`settle --until-idle` ends only when the group has given this process its share and that share
is drained: between a rebalance's revoke and the next assignment, holding nothing is not idle."""

from __future__ import annotations

from consumers.ledger.consumer import Settler
from infra.settings import Settings


async def test_holding_nothing_after_a_revoke_is_not_drained_until_the_next_assignment() -> None:
    settler = Settler(Settings(topic_prefix="idle."))
    assert not await settler._drained()  # never joined
    await settler.assigned([])
    assert await settler._drained()  # joined, and the group gave it nothing: nothing to do
    await settler.revoked([])
    assert not await settler._drained()  # mid-rebalance: its next share may be anything
    await settler.assigned([])
    assert await settler._drained()
