"""The dispatcher's claim lanes (consumers/webhooks/dispatcher.py): each `Lane` claims due deliveries with its
share of the dispatcher's bounds (`lane_bounds`), starts one task per claimed delivery, and hands finished
attempts to its `Recorder`, which writes them by group commit. A lane claims again when a quarter of its
slots are free (a backlog), when deliveries are queued (`wake`, at most one claim per CLAIM_GAP_S), or
every POLL_INTERVAL_S (retries falling due). An endpoint that is failing (its last attempt was not answered
2xx) gets at most FAILING_ENDPOINT_MAX attempts in flight per lane until it answers 2xx again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import asyncpg

from consumers.webhooks.store import DeliveryStore, Finished

log = logging.getLogger(__name__)

POLL_INTERVAL_S: Final = 0.1  # claim at least this often: retries fall due by time, not by notification
CLAIM_GAP_S: Final = 0.025  # a lane woken by a notification claims at most this often
# A claimed delivery falls due again this long after its claim (longer than the dispatcher's REQUEST_TIMEOUT_S).
LEASE_S: Final = 60.0
RECORD_BATCH_MAX: Final = 256  # finished attempts written per transaction
# With a backlog, a lane claims again once this share of its slots is free: a claim costs about the same
# for 20 rows as for 200, so claiming one row per freed slot would spend PostgreSQL's time on claims.
CLAIM_FREE_DIVISOR: Final = 4  # a lane claims again once a quarter of its slots are free

# An endpoint whose last attempt from a lane was not answered 2xx gets at most this many attempts in flight from
# that lane until one is: its retries cannot take the slots, or the CPU, that healthy endpoints' deliveries need.
FAILING_ENDPOINT_MAX: Final = 1
FAILING_ENDPOINTS_MAX: Final = 10_000  # endpoints remembered as failing; past it, a new one is not throttled

# One attempt of a claimed row: the lane's recorder, the row, when it was claimed (time.monotonic()); True when
# the endpoint answered 2xx.
Attempt = Callable[["Recorder", dict[str, Any], float], Coroutine[Any, Any, bool]]


class Recorder:
    """Group commit of finished attempts: the first attempt to finish starts a write of everything that
    has finished (at most RECORD_BATCH_MAX per transaction); attempts finishing meanwhile go in the next
    one. `record` returns once its attempt is committed, so a delivery's slot is freed — and its lease
    given up — only after its record is safe. The only writer of its queue."""

    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self._queue: list[tuple[Finished, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, finished: Finished) -> None:
        """Queues one attempt and waits until it is committed (raises what the write raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((finished, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="webhooks-recorder")
        await done

    async def _write_all(self) -> None:
        while self._queue:  # bounded: each pass takes up to RECORD_BATCH_MAX of a queue fed by bounded tasks
            batch, self._queue = self._queue[:RECORD_BATCH_MAX], self._queue[RECORD_BATCH_MAX:]
            try:
                await self._store.finish_many([finished for finished, _ in batch])
            except Exception as error:  # each waiting attempt sees it; the leases make them due again
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class Lane:
    """One claim loop with its share of the bounds (`per_endpoint_max`, `in_flight_max`): its attempts in
    flight, per endpoint and in all, and their tasks (the only writer of each). A claim waits on
    PostgreSQL for about as long as a batch of POSTs takes, so one loop alone leaves the HTTP side idle
    between claims; the dispatcher's CLAIM_LANES lanes claim in turn, each for every endpoint."""

    def __init__(
        self,
        store: DeliveryStore,
        attempt: Attempt,
        *,
        per_endpoint_max: int,
        in_flight_max: int,
        stop_timeout_s: float,
    ) -> None:
        self._store = store
        self.stop_timeout_s = stop_timeout_s  # how long its attempts may take to finish once `stop` is set
        self._recorder = Recorder(store)
        self._attempt = attempt
        self.per_endpoint_max = per_endpoint_max
        self.in_flight_max = in_flight_max
        self._in_flight: dict[str, int] = {}  # endpoint id → attempts in flight
        self._failing: set[str] = set()  # endpoints whose last attempt that ended was not answered 2xx
        self._busy = 0  # attempts in flight in all (the sum of _in_flight)
        self._tasks: set[asyncio.Task[bool]] = set()
        self._slot_freed = asyncio.Event()
        self._due = asyncio.Event()  # deliveries were queued since this lane's last claim began
        # Since when (time.monotonic()) every claim has filled every free slot; None: the last one did not.
        self.backlogged_since: float | None = None
        self.last_backlogged = float("-inf")  # when a claim last filled every free slot
        self.waited_s = 0.0  # the longest a healthy endpoint's row of the last claim with rows had been due

    def wake(self) -> None:
        """Deliveries were queued (a notification on DUE_CHANNEL): claim without waiting for the poll."""
        self._due.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claims and starts due deliveries until `stop` is set, then lets its attempts finish."""
        while not stop.is_set():  # bounded by `stop`
            free = self.in_flight_max - self._busy
            self._due.clear()
            claim_started = time.monotonic()
            try:
                claimed = await self._store.claim(
                    in_flight=self._counted_in_flight(),
                    per_endpoint_max=self.per_endpoint_max,
                    batch_max=free,
                    lease_s=LEASE_S,
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("webhooks: PostgreSQL did not answer (%s); trying again", error)
                claimed = []
            claimed_at = time.monotonic()
            if claimed:  # a failing endpoint's rows wait by design (probed, retried on the schedule): not counted
                healthy = (row["waited_s"] for row in claimed if row["endpoint_id"] not in self._failing)
                self.waited_s = max(healthy, default=0.0)
            for row in claimed:
                self._start(row, claimed_at)
            # A claim that took every free slot may have left due rows behind: claim again when a
            # slot frees. Otherwise nothing more is due until deliveries are queued (a notification)
            # or time passes (retries falling due): wait for either, at most POLL_INTERVAL_S.
            self._slot_freed.clear()
            wake = [asyncio.ensure_future(stop.wait())]
            backlog = bool(claimed) and len(claimed) >= free
            self._note_backlog(backlog or self._endpoints_full(claimed), claimed_at)
            wake.append(asyncio.ensure_future(self._slot_freed.wait() if backlog else self._due.wait()))
            _, pending = await asyncio.wait(wake, timeout=POLL_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
            if not backlog and not stop.is_set():  # woken by a notification: let a few more commits land
                await asyncio.sleep(max(0.0, claim_started + CLAIM_GAP_S - time.monotonic()))
        await self._finish()

    def _endpoints_full(self, claimed: list[dict[str, Any]]) -> bool:
        """The claim filled every endpoint it took rows for to its bound (a backlog behind the per-endpoint
        bound); an endpoint held to its probe while failing says nothing about a backlog."""
        endpoints = {row["endpoint_id"] for row in claimed} - self._failing
        return bool(endpoints) and all(self._in_flight.get(e, 0) >= self.per_endpoint_max for e in endpoints)

    def _note_backlog(self, backlog: bool, now: float) -> None:
        if backlog:
            self.last_backlogged = now
            if self.backlogged_since is None:
                self.backlogged_since = now
        else:
            self.backlogged_since = None

    def bound(self, per_endpoint_max: int, in_flight_max: int) -> None:
        """New bounds, from the next claim on (attempts in flight are not cut short: see `within_bounds`)."""
        self.per_endpoint_max, self.in_flight_max = per_endpoint_max, in_flight_max
        self._slot_freed.set()

    def within_bounds(self) -> bool:
        """True when its attempts in flight fit its bounds (after `bound` lowered them, once enough ended)."""
        return self._busy <= self.in_flight_max and all(n <= self.per_endpoint_max for n in self._in_flight.values())

    def _counted_in_flight(self) -> dict[str, int]:
        """In-flight counts as the claim sees them: a failing endpoint counts as if all but what is left of
        its FAILING_ENDPOINT_MAX were busy (it is probed, not flooded, until it answers 2xx again)."""
        counted = dict(self._in_flight)
        for endpoint in self._failing:
            left = max(0, min(self.per_endpoint_max, FAILING_ENDPOINT_MAX) - self._in_flight.get(endpoint, 0))
            counted[endpoint] = self.per_endpoint_max - left
        return counted

    async def _finish(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.stop_timeout_s)
        for task in list(self._tasks):  # only past the request timeout: the lease makes them due again
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.stop_timeout_s)

    def _start(self, row: dict[str, Any], claimed_at: float) -> None:
        endpoint = row["endpoint_id"]
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        self._busy += 1
        task = asyncio.create_task(self._attempt(self._recorder, row, claimed_at), name=f"webhook-{row['id']}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._ended(done, endpoint))

    def _ended(self, task: asyncio.Task[bool], endpoint: str) -> None:
        self._tasks.discard(task)
        self._in_flight[endpoint] -= 1
        if not self._in_flight[endpoint]:
            del self._in_flight[endpoint]
        self._busy -= 1
        if self.in_flight_max - self._busy >= max(1, self.in_flight_max // CLAIM_FREE_DIVISOR):
            self._slot_freed.set()
        if task.cancelled():
            return
        if task.exception() is not None:
            # The lease makes the delivery due again; the attempt is not lost, only unrecorded.
            log.warning("webhooks: an attempt could not be recorded: %s", task.exception())
        elif task.result():
            self._failing.discard(endpoint)
        elif len(self._failing) < FAILING_ENDPOINTS_MAX:
            self._failing.add(endpoint)


def lane_bounds(lanes: int, per_endpoint_max: int, in_flight_max: int) -> list[tuple[int, int]]:
    """Each lane's (per-endpoint, in-all) share of the bounds: the shares add up to the bounds exactly, and
    every lane gets at least one slot per endpoint while there are no more lanes than `per_endpoint_max`."""
    count = max(1, min(lanes, per_endpoint_max, in_flight_max))
    return [
        (
            per_endpoint_max // count + (n < per_endpoint_max % count),
            in_flight_max // count + (n < in_flight_max % count),
        )
        for n in range(count)
    ]
