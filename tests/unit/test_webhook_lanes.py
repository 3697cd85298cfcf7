"""A claim lane probes a failing endpoint one attempt at a time until it answers 2xx again."""

from __future__ import annotations

import asyncio
from typing import Any

from consumers.webhooks.lanes import FAILING_ENDPOINT_MAX, Lane, Recorder

PER_ENDPOINT: int = 8


class _Store:
    """Hands out one prepared batch per claim and notes the in-flight counts each claim was given."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = batches
        self.seen: list[dict[str, int]] = []
        self.lane: Lane | None = None  # set by _lane_after
        self.waits: list[float] = []  # the lane's waited_s as each claim began (what the previous claims left)

    async def claim(
        self, *, in_flight: dict[str, int], per_endpoint_max: int, batch_max: int, lease_s: float
    ) -> list[dict[str, Any]]:
        self.seen.append(dict(in_flight))
        if self.lane is not None:
            self.waits.append(self.lane.waited_s)
        return self.batches.pop(0) if self.batches else []


def _row(number: int, endpoint: str, answered_2xx: bool) -> dict[str, Any]:
    return {"id": number, "endpoint_id": endpoint, "ok": answered_2xx, "waited_s": 0.0}


async def _claims_after(batches: list[list[dict[str, Any]]], claims: int) -> list[dict[str, int]]:
    """Runs a lane until it has claimed `claims` times; the in-flight counts each claim saw."""
    store = _Store(batches)

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        return bool(row["ok"])

    await _lane_after(store, attempt, claims=claims, release=asyncio.Event())
    return store.seen


async def _lane_after(store: _Store, attempt: Any, *, claims: int, release: asyncio.Event) -> Lane:
    """Runs a lane over `store` until it has claimed `claims` times, then lets held attempts end and stops it."""
    stop = asyncio.Event()
    lane = store.lane = Lane(store, attempt, per_endpoint_max=PER_ENDPOINT, in_flight_max=64, stop_timeout_s=1.0)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run(stop))
    async with asyncio.timeout(10):
        while len(store.seen) < claims:  # bounded by the timeout
            await asyncio.sleep(0.01)
    release.set()
    stop.set()
    await task
    return lane


async def test_a_failing_endpoint_is_probed_not_flooded_and_recovers_on_its_first_2xx() -> None:
    """After a non-2xx answer the endpoint counts as all but FAILING_ENDPOINT_MAX of its slots busy; a healthy
    endpoint beside it keeps its whole share; one 2xx from the failing endpoint gives it its share back."""
    seen = await _claims_after(
        [[_row(1, "bad", False), _row(2, "good", True)], [], [_row(3, "bad", True)], []],
        claims=5,
    )
    assert seen[0] == {}
    assert seen[1] == {"bad": PER_ENDPOINT - FAILING_ENDPOINT_MAX}  # "good" is not held back
    assert seen[-1] == {}  # answered 2xx again: no longer throttled


async def test_a_failing_endpoint_with_its_probe_in_flight_gets_no_second_one() -> None:
    """While the failing endpoint's probe is still in flight, the claim sees every one of its slots busy."""
    store = _Store([[_row(1, "bad", False)], [_row(2, "bad", False)]])
    release = asyncio.Event()

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        if row["id"] == 2:
            await release.wait()
        return bool(row["ok"])

    await _lane_after(store, attempt, claims=4, release=release)
    assert store.seen[1] == {"bad": PER_ENDPOINT - FAILING_ENDPOINT_MAX}
    assert store.seen[3] == {"bad": PER_ENDPOINT}  # its one probe is in flight


async def test_a_lane_notes_since_when_its_claims_fill_every_free_slot() -> None:
    """A claim that takes every free slot starts (or keeps) the backlog clock; one that does not stops it.
    `bound` lowers the bounds for the next claim, and `within_bounds` says when the attempts fit again."""
    release = asyncio.Event()
    store = _Store([[_row(1, "a", True), _row(2, "b", True)], [], []])
    stop = asyncio.Event()

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        await release.wait()
        return True

    lane = Lane(store, attempt, per_endpoint_max=PER_ENDPOINT, in_flight_max=2, stop_timeout_s=1.0)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run(stop))
    async with asyncio.timeout(10):
        while lane.backlogged_since is None:  # bounded by the timeout
            await asyncio.sleep(0.01)
    filled_at = lane.backlogged_since
    lane.bound(PER_ENDPOINT, 1)
    assert not lane.within_bounds()  # two in flight, one allowed
    release.set()
    async with asyncio.timeout(10):
        while lane.backlogged_since is not None:  # bounded by the timeout
            await asyncio.sleep(0.01)
    assert lane.within_bounds() and lane.last_backlogged >= filled_at
    stop.set()
    await task


async def _backlog_after(rows: list[dict[str, Any]], per_endpoint: int, claims: int) -> float | None:
    """Runs a lane whose every claim returns `rows` again and answers its backlogged_since after `claims`
    claims. An attempt answered 2xx, or any after the first claim's, hangs until the stop."""
    hold = asyncio.Event()

    class _Again(_Store):
        async def claim(self, **kwargs: Any) -> list[dict[str, Any]]:
            self.seen.append(dict(kwargs["in_flight"]))
            return [dict(row, id=len(self.seen) * 1000 + n) for n, row in enumerate(rows)]

    store, stop = _Again([]), asyncio.Event()

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        if row["ok"] or row["id"] >= 2000:
            await hold.wait()
        return bool(row["ok"])

    lane = Lane(store, attempt, per_endpoint_max=per_endpoint, in_flight_max=64, stop_timeout_s=1.0)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run(stop))
    async with asyncio.timeout(10):
        while len(store.seen) < claims:  # bounded by the timeout
            await asyncio.sleep(0.01)
    since = lane.backlogged_since
    hold.set()
    stop.set()
    await task
    return since


async def test_an_endpoint_filled_to_its_bound_is_a_backlog_but_a_failing_endpoints_probe_is_not() -> None:
    """A claim that fills an endpoint to its per-endpoint bound (fewer rows than free slots) counts as a
    backlog; one that only takes a failing endpoint's probe, which fills its bound of one, does not (it
    would wake a second process for an endpoint that is down)."""
    full = await _backlog_after([_row(0, "busy", True)], per_endpoint=1, claims=3)
    assert full is not None
    probed = await _backlog_after([_row(0, "down", False)], per_endpoint=1, claims=4)
    assert probed is None


async def test_a_lane_notes_how_long_its_last_claims_rows_had_waited() -> None:
    """The longest wait (`waited_s`, due → claimed) among the rows of the lane's last claim that returned rows;
    an empty claim leaves it as it was (nothing waits), and a claim of fresh rows lowers it again."""
    release = asyncio.Event()
    old = [dict(_row(1, "a", True), waited_s=0.1), dict(_row(2, "b", True), waited_s=1.5)]
    store = _Store([old, [], [dict(_row(3, "a", True), waited_s=0.02)]])
    stop = asyncio.Event()

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        await release.wait()
        return True

    lane = Lane(store, attempt, per_endpoint_max=PER_ENDPOINT, in_flight_max=64, stop_timeout_s=1.0)  # type: ignore[arg-type]
    assert lane.waited_s == 0.0
    task = asyncio.create_task(lane.run(stop))
    async with asyncio.timeout(10):
        while len(store.seen) < 2:  # bounded by the timeout
            await asyncio.sleep(0.01)
        assert lane.waited_s == 1.5
        while len(store.seen) < 4:  # bounded by the timeout
            await asyncio.sleep(0.01)
    assert lane.waited_s == 0.02
    release.set()
    stop.set()
    await task


async def test_a_failing_endpoints_long_waiting_rows_do_not_count_as_waiting() -> None:
    """A failing endpoint's deliveries wait by design (probed one at a time, retried on the schedule): its rows'
    waits do not count in `waited_s`, or a failing endpoint would look like a backlog worth a second process."""
    release = asyncio.Event()
    first = [_row(1, "bad", False)]
    second = [dict(_row(2, "bad", False), waited_s=10.0), dict(_row(3, "good", True), waited_s=0.05)]
    only_failing = [dict(_row(4, "bad", False), waited_s=11.0)]
    store = _Store([first, [], second, only_failing])

    async def attempt(_: Recorder, row: dict[str, Any], __: float) -> bool:
        if row["ok"]:
            await release.wait()
        return bool(row["ok"])

    await _lane_after(store, attempt, claims=5, release=release)
    assert store.seen[2] == {"bad": PER_ENDPOINT - FAILING_ENDPOINT_MAX}  # "bad" was failing at the third claim
    assert store.waits[3] == 0.05  # after the third claim: the healthy row's wait only
    assert store.waits[4] == 0.0  # after a claim of the failing endpoint's rows only: nothing healthy has waited
