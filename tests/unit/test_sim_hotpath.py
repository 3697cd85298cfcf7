"""The simulation's fast paths (caches, batches, inlined formatting) change nothing in the output."""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_right
from datetime import UTC, datetime
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.sim import records, registry
from producers.sim.calendar import DEFAULT_START, Calendar
from producers.sim.calibration import load_calibration
from producers.sim.engine import BATCH_EVENTS, Simulation, SimulationConfig
from producers.sim.identifiers import IdSource, format_uuid, token
from producers.sim.population import Sampler
from producers.sim.records import AccountOpenedRec, Timestamps
from producers.sim.registry import TokenCache

# SHA-256 of the JSON Lines of seed 42, 30 days, 3,000 citizens, 300 merchants, baseline scenario,
# recorded before the hot path was optimised. Change it only for a deliberate change of behaviour.
# Re-recorded once, deliberately, for the adoption model with CNIC and phone ceilings (issue 11):
# citizens draw their CNIC and access rank, so the population and every later draw moved.
# Re-recorded again, deliberately, for the study's speed (issue 11): the flows draw indices as
# int(random() * n) instead of randrange/choice, tickets by an inlined Box-Muller transform instead
# of normalvariate, a time of day from one number instead of two, and a day's intents in blocks;
# with it, P2P transfers per holder-day went from 0.10 to 0.12 (kp.json) to keep the fit report's
# digital share within tolerance. Re-recorded a third time, deliberately, for abandoned orders (issue 11's
# intended_timeout label): the order's one fate draw now also leaves 1% of prepaid orders to expire, and
# their citizens' money comes back to the simulation's view 8 days later. To re-record after a deliberate change:
#   kpsandbox simulate --seed 42 --days 30 --citizens 3000 --merchants 300 --out g.jsonl && sha256sum g.jsonl
GOLDEN_SHA256 = "e128b845f61ee1b5cd98ab8bc5f3aad8e6e7078823a22a9e67a19cac4d35af03"


def _small() -> Simulation:
    return Simulation(SimulationConfig(seed=42, days=30, citizens=3_000, merchants=300))


def test_stream_matches_the_recorded_golden_digest() -> None:
    """A fixed seed still yields the exact bytes recorded before the optimisations."""
    text = "".join(line + "\n" for line in _small().lines())
    assert hashlib.sha256(text.encode()).hexdigest() == GOLDEN_SHA256


def test_batches_concatenate_to_the_record_stream() -> None:
    """batches() yields the same records, in the same order, as records(); intent batches stay bounded."""
    batches = list(_small().batches())
    flat = [rec for batch in batches for rec in batch]
    assert flat == list(_small().records())
    # Only a day's account openings can exceed the bound; an intent adds at most a few records.
    intent_batches = [b for b in batches if any(not isinstance(rec, AccountOpenedRec) for rec in b)]
    assert max(len(b) for b in intent_batches) < BATCH_EVENTS + 8


def test_a_simulation_refuses_to_run_twice() -> None:
    """A second batches() call raises instead of silently yielding a different stream."""
    sim = _small()
    next(sim.batches())
    with pytest.raises(RuntimeError):
        next(sim.batches())


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_799), min_size=1, max_size=50))
def test_timestamps_match_datetime_formatting_through_cache_clears(seconds: list[int]) -> None:
    """Cached ISO strings equal datetime's formatting, also after the bounded cache empties."""
    original = records.TIMESTAMP_CACHE_MAX
    records.TIMESTAMP_CACHE_MAX = 120
    try:
        ts = Timestamps()
        for second in seconds + seconds:
            expected = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert ts[second] == ts.iso(second) == expected
            assert len(ts) <= 180
    finally:
        records.TIMESTAMP_CACHE_MAX = original


def test_next_uuid_equals_format_uuid_of_the_same_bits() -> None:
    """The inlined UUID formatting in IdSource gives format_uuid's text for the same random bits."""
    ids, bits = IdSource(5), random.Random("5:event-ids").getrandbits
    for _ in range(2_000):
        assert ids.next_uuid() == format_uuid(bits(128))


def test_token_cache_returns_the_same_tokens_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached tokens equal freshly made ones, and the cache empties itself after its bound."""
    monkeypatch.setattr(registry, "TOKEN_CACHE_MAX", 10)
    cache = TokenCache(100, lambda i: token("cit", 99, i))
    for i in [*range(100), *range(0, 100, 7)]:
        assert (cache.tokens[i] or cache.add(i)) == token("cit", 99, i)
        assert sum(t is not None for t in cache.tokens) <= 10


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_sampler_draws_as_a_clamped_bisect_would(weights: list[float], draw: float) -> None:
    """Pinning the last cumulative weight to 1 picks the same index as clamping to the last one."""
    from bisect import bisect_right
    from itertools import accumulate

    total = sum(weights)
    cdf = [w / total for w in accumulate(weights)]
    expected = min(bisect_right(cdf, draw), len(cdf) - 1)

    class Fixed(random.Random):
        def random(self) -> float:
            return draw

    assert Sampler(weights).draw(Fixed()) == expected


def _calendar() -> Calendar:
    b = load_calibration().behaviour
    return Calendar(
        DEFAULT_START, b["hour_weights"], b["weekday_multipliers"], b["payday_window_days"], b["payday_multiplier"]
    )


def test_times_of_day_draw_as_second_of_day_does() -> None:
    """A day's block of times equals one second_of_day draw after another on the same stream."""
    calendar, day_start = _calendar(), 1_767_225_600
    block, one_by_one = random.Random(3), random.Random(3)
    assert calendar.times_of_day(block, 500, day_start) == [
        day_start + calendar.second_of_day(one_by_one) for _ in range(500)
    ]


def test_sampler_draws_as_draw_does() -> None:
    """Sampler.draws equals one draw after another on the same stream."""
    sampler = Sampler([0.5, 0.0, 2.0, 1.0])
    block, one_by_one = random.Random(5), random.Random(5)
    assert sampler.draws(block, 300) == [sampler.draw(one_by_one) for _ in range(300)]


def _hour_cdf() -> list[float]:
    weights = load_calibration().behaviour["hour_weights"]
    return [w / sum(weights) for w in accumulate(weights)]


class _Draws(random.Random):
    """A Random whose random() returns the given numbers in turn."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__()
        self.draws = draws

    def random(self) -> float:
        return self.draws.pop(0)


@given(st.floats(min_value=0, max_value=1, exclude_max=True))
def test_second_of_day_falls_in_the_hour_of_its_draw(draw: float) -> None:
    """One draw gives a second inside the hour the hour-of-day profile assigns to it, also just below
    an hour's end in the profile (where rounding could otherwise give second 3600, the next hour)."""
    calendar, cdf = _calendar(), _hour_cdf()
    draws = [draw, *(math.nextafter(edge, 0.0) for edge in cdf)]
    rng = _Draws(list(draws))
    for value in draws:
        assert calendar.second_of_day(rng) // 3600 == min(bisect_right(cdf, value), 23)


def test_second_of_day_is_uniform_within_the_hour() -> None:
    """A draw at the start, middle and end of an hour's share of the profile gives the hour's first,
    middle and last second (so one number serves for both the hour and the second in it)."""
    calendar, cdf = _calendar(), _hour_cdf()
    lows = [0.0, *cdf[:-1]]
    for hour, (low, high) in enumerate(zip(lows, cdf, strict=True)):
        if high - low < 1e-6:
            continue
        rng = _Draws([low, (low + high) / 2, math.nextafter(high, 0.0)])
        assert calendar.second_of_day(rng) == hour * 3600
        assert calendar.second_of_day(rng) - hour * 3600 in (1799, 1800)  # 1800, but for rounding
        assert calendar.second_of_day(rng) == hour * 3600 + 3599
