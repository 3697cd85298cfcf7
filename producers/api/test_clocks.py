"""Test clocks (issue 10, item 7): a tenant's frozen time, and how it reaches the ledger.

The contract's clock rule (consumers/ledger/clock.py) keeps one clock per (partition, producer) and
expires an authorisation by the clock of the producer that asked for it. So each test clock is its
own producer, `kp-api-clock-<id>`: a payment whose payer lives on the clock is dated by the clock and
sent as that producer; its capture or cancel too. Advancing the clock moves no one else's time.

An advance, in one transaction, moves `frozen_time` forward and makes due (wall time now) every
scheduled expiry on the clock whose `clock_due_at` it has passed; the API's scheduler then sends each
authorisation's release dated at its `expires_at` as the clock's producer, which moves that producer's
ledger clock there, so the ledger expires the authorisation by its own rule and answers
`payment.expired` — and the webhook follows. The clock is `advancing` until those are sent.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Final

import asyncpg

from producers.api.accounts import PRODUCER
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.api.payments import PaymentCreate
from schemas.api.test_clocks import (
    CLOCK_EXPIRES_IN_MAX_S,
    FROZEN_TIME_AHEAD_MAX,
    FROZEN_TIME_MIN,
    TEST_CLOCK_ID_PREFIX,
    TestClock,
    TestClockAdvance,
    TestClockCreate,
)

TEST_CLOCK_ID_RANDOM_BYTES: Final = 16
CLOCK_PRODUCER_PREFIX: Final = f"{PRODUCER}-clock-"

CLOCK_COLUMNS: Final = """clock.id, clock.name, clock.frozen_time, clock.created_at,
       EXISTS (SELECT 1 FROM api_scheduled AS due WHERE due.test_clock_id = clock.id AND due.due_at <= now())
           AS advancing"""
INSERT_CLOCK: Final = f"""
WITH clock AS (
    INSERT INTO api_test_clocks (id, tenant_id, name, frozen_time) VALUES ($1, $2, $3, $4) RETURNING *
)
SELECT {CLOCK_COLUMNS} FROM clock
"""
SELECT_CLOCK: Final = f"""
SELECT {CLOCK_COLUMNS} FROM api_test_clocks AS clock WHERE clock.id = $1 AND clock.tenant_id = $2
"""
LOCK_CLOCK: Final = "SELECT frozen_time FROM api_test_clocks WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
MOVE_CLOCK: Final = "UPDATE api_test_clocks SET frozen_time = $2 WHERE id = $1"
MAKE_DUE: Final = """
UPDATE api_scheduled SET due_at = now()
WHERE test_clock_id = $1 AND clock_due_at <= $2 AND due_at = 'infinity'
"""


def clock_producer(clock_id: str) -> str:
    """The producer name a clock's requests carry: the ledger keeps a clock per producer."""
    return CLOCK_PRODUCER_PREFIX + clock_id


def request_time(payer: asyncpg.Record, now: datetime) -> tuple[datetime, str]:
    """When a request of this payer happens and who sends it: its clock's time and producer when the
    account lives on a test clock (columns `test_clock_id`, `clock_time`), else now and the API."""
    if payer["test_clock_id"] is None:
        return now, PRODUCER
    return payer["clock_time"], clock_producer(payer["test_clock_id"])


def clock_of(producer: str) -> str | None:
    """The test clock a request's producer names, or None for the API's wall-clock producer."""
    return producer.removeprefix(CLOCK_PRODUCER_PREFIX) if producer.startswith(CLOCK_PRODUCER_PREFIX) else None


def check_clock_expiry(request: PaymentCreate, payer: asyncpg.Record, expires_in: int) -> None:
    """An authorisation on a test clock lives at most CLOCK_EXPIRES_IN_MAX_S (see schemas/api/test_clocks.py)."""
    on_clock = payer["test_clock_id"] is not None
    if on_clock and request.capture_method == "manual" and expires_in > CLOCK_EXPIRES_IN_MAX_S:
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail=f"the payer lives on a test clock, where an authorisation lives at most {CLOCK_EXPIRES_IN_MAX_S} "
            "seconds (30 days, the ledger's clock-skew bound); give a shorter `expires_in`",
            param="expires_in",
        )


def check_frozen_time(at: datetime, now: datetime) -> None:
    """A clock's time lies between FROZEN_TIME_MIN and FROZEN_TIME_AHEAD_MAX from now."""
    if not FROZEN_TIME_MIN <= at <= now + FROZEN_TIME_AHEAD_MAX:
        raise ApiError(
            status=422,
            code="invalid_parameter",
            detail=f"a test clock's time must be between {FROZEN_TIME_MIN.date()} and five years from now",
            param="frozen_time",
        )


def clock_from_row(row: asyncpg.Record) -> TestClock:
    """The API's view of a stored clock."""
    return TestClock(
        id=row["id"],
        name=row["name"],
        frozen_time=row["frozen_time"],
        status="advancing" if row["advancing"] else "ready",
        created_at=row["created_at"],
    )


def clock_not_found() -> ApiError:
    """404 for a clock id the tenant does not have."""
    return ApiError(status=404, code="not_found", detail="you have no test clock with this id", param="test_clock")


class TestClocks:
    """Creates, reads and advances a tenant's test clocks."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, tenant: Tenant, request: TestClockCreate) -> TestClock:
        """A new clock at `frozen_time`."""
        check_frozen_time(request.frozen_time, datetime.now(UTC))
        clock_id = TEST_CLOCK_ID_PREFIX + secrets.token_hex(TEST_CLOCK_ID_RANDOM_BYTES)
        try:
            row = await self._pool.fetchrow(INSERT_CLOCK, clock_id, tenant.id, request.name, request.frozen_time)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        assert row is not None
        return clock_from_row(row)

    async def get(self, *, tenant: Tenant, clock_id: str) -> TestClock:
        """The tenant's clock; 404 when it has no such clock."""
        try:
            row = await self._pool.fetchrow(SELECT_CLOCK, clock_id, tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        if row is None:
            raise clock_not_found()
        return clock_from_row(row)

    async def advance(self, *, tenant: Tenant, clock_id: str, request: TestClockAdvance) -> TestClock:
        """Moves the clock forward to `frozen_time` and makes what that passes due (see the module)."""
        check_frozen_time(request.frozen_time, datetime.now(UTC))
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection:
                async with connection.transaction():
                    current = await connection.fetchval(LOCK_CLOCK, clock_id, tenant.id)
                    if current is None:
                        raise clock_not_found()
                    if request.frozen_time <= current:
                        raise ApiError(
                            status=422,
                            code="test_clock_not_forward",
                            detail=f"the clock is at {current.isoformat()}; advance it to a later time",
                            param="frozen_time",
                        )
                    await connection.execute(MOVE_CLOCK, clock_id, request.frozen_time)
                    await connection.execute(MAKE_DUE, clock_id, request.frozen_time)
                row = await connection.fetchrow(SELECT_CLOCK, clock_id, tenant.id)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        assert row is not None
        return clock_from_row(row)
