"""`/v1/test_helpers/test_clocks`: a tenant's frozen time, advanced on demand (issue 10, item 7).

Accounts opened with `"test_clock": id` live on that clock: their payments are dated by it, and an
authorisation made on it expires when an advance of the clock passes its `expires_at` — days of
waiting done in one call, deterministically, with the webhooks that follow. How this reaches the
ledger without bending the contract's clock rules: docs/webhooks.md, "Test clocks".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.envelope import TOKEN_PATTERN

TEST_CLOCK_ID_PREFIX: Final = "clk_"
TEST_CLOCK_NAME_CHARS_MAX: Final = 100
# A clock is a date a startup wants to test at: from the year 2000 to a few years ahead of today.
FROZEN_TIME_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
FROZEN_TIME_AHEAD_MAX: Final = timedelta(days=5 * 366)
# The ledger refuses a request dated more than 30 days ahead of its producer's clock and of the
# wall clock (consumers/ledger/clock.py CLOCK_SKEW_MAX); an authorisation on a clock may therefore
# live at most this long, so the release the clock sends at its expiry is always within reach.
CLOCK_EXPIRES_IN_MAX_S: Final = 30 * 86_400

TestClockId = Annotated[
    str, Field(pattern=TOKEN_PATTERN, max_length=40, description="A test clock id, e.g. 'clk_3f9c…'.")
]
TestClockStatus = Literal["ready", "advancing"]


class TestClockCreate(BaseModel):
    """A new clock frozen at `frozen_time`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"frozen_time": "2027-01-01T09:00:00Z", "name": "expiry"}]}
    )

    frozen_time: AwareDatetime = Field(description="The clock's time, with its zone (RFC 3339).")
    name: str | None = Field(default=None, min_length=1, max_length=TEST_CLOCK_NAME_CHARS_MAX)


class TestClockAdvance(BaseModel):
    """Moves the clock forward to `frozen_time` (never back)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"frozen_time": "2027-01-09T09:00:00Z"}]})

    frozen_time: AwareDatetime = Field(description="The new time; later than the clock's current time.")


class TestClock(BaseModel):
    """A test clock. `advancing` while work its last advance made due is still being sent to the ledger."""

    object: Literal["test_clock"] = "test_clock"
    id: TestClockId
    name: str | None = None
    frozen_time: datetime
    status: TestClockStatus
    created_at: datetime
