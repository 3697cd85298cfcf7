"""The pure parts of test clocks (producers/api/test_clocks.py): who sends a request and when, and the bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producers.api.accounts import PRODUCER
from producers.api.problems import ApiError
from producers.api.test_clocks import check_frozen_time, clock_of, clock_producer, request_time
from schemas.envelope import Envelope

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
CLOCK_ID = "clk_" + "a" * 32


def test_an_account_on_wall_time_sends_now_as_the_api() -> None:
    assert request_time({"test_clock_id": None, "clock_time": None}, NOW) == (NOW, PRODUCER)


def test_an_account_on_a_clock_sends_the_clock_s_time_as_the_clock_s_own_producer() -> None:
    frozen = NOW - timedelta(days=40)
    at, producer = request_time({"test_clock_id": CLOCK_ID, "clock_time": frozen}, NOW)
    assert (at, producer) == (frozen, clock_producer(CLOCK_ID))
    assert producer != PRODUCER and clock_of(producer) == CLOCK_ID
    assert clock_of(PRODUCER) is None


def test_a_clock_producer_fits_the_envelope_s_producer_field() -> None:
    limit = Envelope.model_fields["producer"].metadata
    max_length = next(m.max_length for m in limit if hasattr(m, "max_length"))
    assert len(clock_producer(CLOCK_ID)) <= max_length


@pytest.mark.parametrize("at", [datetime(1999, 12, 31, tzinfo=UTC), NOW + timedelta(days=6 * 366)])
def test_a_clock_outside_its_bounds_is_refused(at: datetime) -> None:
    with pytest.raises(ApiError) as caught:
        check_frozen_time(at, NOW)
    assert (caught.value.problem.status, caught.value.problem.param) == (422, "frozen_time")


def test_a_clock_within_its_bounds_is_accepted() -> None:
    check_frozen_time(NOW - timedelta(days=3650), NOW)
    check_frozen_time(NOW + timedelta(days=4 * 366), NOW)
