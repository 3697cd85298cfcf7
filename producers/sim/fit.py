"""The fit report: simulated aggregates against the calibration targets.

As PaySim does, each series is compared by its normalised root-mean-square error,

    NRMSE = sqrt(mean((simulated - target)^2)) / mean(|target|),

and flagged when it exceeds the tolerance the calibration file states for that series.

Long-horizon *envelopes* bound where account ownership may end after ten simulated years of a
named scenario (Global Findex decades: Pakistan's own path for baseline, the fastest decades on
record for digital-kp). A run shorter than the horizon, or of another scenario, lists them as
not measured; they count against the report only when measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Final

from producers.sim.calibration import Calibration
from producers.sim.stats import RunStats


@dataclass(frozen=True)
class SeriesFit:
    """One series: simulated and target values, their NRMSE and whether it is within tolerance."""

    name: str
    simulated: dict[str, float]
    target: dict[str, float]
    nrmse: float
    tolerance: float
    within: bool
    source: str
    samples: int


@dataclass(frozen=True)
class EnvelopeFit:
    """A long-horizon target: account ownership (share of adults) after `years` of `scenario`
    must lie in [low, high]. `simulated` and `within` are None when this run cannot tell."""

    name: str
    scenario: str
    years: int
    low: float
    high: float
    simulated: float | None
    within: bool | None
    source: str


@dataclass(frozen=True)
class FitReport:
    """Every series of one run, and the long-horizon envelopes."""

    series: tuple[SeriesFit, ...]
    envelopes: tuple[EnvelopeFit, ...] = ()

    @property
    def within(self) -> bool:
        """True when every series is within tolerance and no measured envelope is missed."""
        return all(s.within for s in self.series) and all(e.within is not False for e in self.envelopes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "within_tolerance": self.within,
                "series": [asdict(s) for s in self.series],
                "envelopes": [asdict(e) for e in self.envelopes],
            },
            indent=2,
        )

    def to_text(self) -> str:
        lines = ["Fit report: simulated vs calibration targets (NRMSE = RMSE / mean |target|)", ""]
        for s in self.series:
            flag = "ok " if s.within else "OUT"
            lines.append(f"[{flag}] {s.name:<24} NRMSE {s.nrmse:7.3f}  tolerance {s.tolerance:.2f}  n={s.samples}")
            for key in s.target:
                lines.append(
                    f"        {key:<22} simulated {s.simulated.get(key, 0.0):>12.4f}  target {s.target[key]:>12.4f}"
                )
        for e in self.envelopes:
            flag = "-- " if e.within is None else ("ok " if e.within else "OUT")
            measured = "not measured (needs a run this long)" if e.simulated is None else f"simulated {e.simulated:.3f}"
            lines.append(
                f"[{flag}] {e.name:<24} {e.scenario} after {e.years} years in [{e.low:.2f}, {e.high:.2f}]: {measured}"
            )
        lines.append("")
        lines.append("all series within tolerance" if self.within else "some series are OUTSIDE tolerance")
        return "\n".join(lines)


def nrmse(simulated: dict[str, float], target: dict[str, float]) -> float:
    """Normalised RMSE of simulated against target over the target's keys."""
    scale = sum(abs(v) for v in target.values()) / len(target)
    if scale == 0:
        return 0.0
    mse = sum((simulated.get(k, 0.0) - t) ** 2 for k, t in target.items()) / len(target)
    return math.sqrt(mse) / scale


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


DAYS_PER_YEAR: Final = 365  # a "ten-year" run is `--days 3650`


def long_horizon_envelopes(cal: Calibration, stats: RunStats, scenario: str | None) -> tuple[EnvelopeFit, ...]:
    """The long-horizon inclusion envelopes, measured on this run where it is long enough and of
    the envelope's scenario."""
    target = cal.targets["long_horizon_inclusion"]
    years = int(target["years"])
    horizon = years * DAYS_PER_YEAR
    envelopes = []
    for name, (low, high) in target["value"].items():
        simulated = None
        if name == scenario and len(stats.days) >= horizon:
            simulated = stats.days[horizon - 1].inclusion_by_gender["all"]
        within = None if simulated is None else low <= simulated <= high
        envelopes.append(
            EnvelopeFit("long_horizon_inclusion", name, years, low, high, simulated, within, target["source"])
        )
    return tuple(envelopes)


def fit_report(cal: Calibration, stats: RunStats, scenario: str | None = None) -> FitReport:
    """Compares a finished run's aggregates with every target in the calibration file; the
    long-horizon envelope of `scenario` (its name) is measured when the run is long enough."""
    targets = cal.targets
    total_pop = sum(d.population for d in cal.districts)
    citizens = sum(stats.citizens_by_district)
    digital_total = sum(stats.digital_flows.values())
    orders = stats.orders_cod + stats.orders_prepaid
    ticket_keys = {"p2p": "p2p", "p2m_kiryana": "p2m_kiryana", "ecommerce": "ecommerce", "bill": "bill"}
    initial = cal.initial_inclusion()
    rows: list[tuple[str, dict[str, float], dict[str, float], int]] = [
        (
            "district_share",
            {d.name: _share(stats.citizens_by_district[k], citizens) for k, d in enumerate(cal.districts)},
            {d.name: d.population / total_pop for d in cal.districts},
            citizens,
        ),
        (
            "inclusion_by_gender",
            {g: stats.initial_inclusion.get(g, 0.0) for g in ("male", "female")},
            {g: initial[g] for g in ("male", "female")},
            citizens,
        ),
        (
            "ticket_mean",
            {k: stats.tickets[s].mean for k, s in ticket_keys.items() if s in stats.tickets},
            {k: float(v) for k, v in targets["ticket_mean"]["value"].items()},
            min((stats.tickets[s].count if s in stats.tickets else 0) for s in ticket_keys.values()),
        ),
        (
            "cash_on_delivery_share",
            {"cod": _share(stats.orders_cod, orders)},
            targets["cash_on_delivery_share"]["value"],
            orders,
        ),
        (
            "digital_flow_mix",
            {k: _share(stats.digital_flows[k], digital_total) for k in ("p2p", "bill")},
            targets["digital_flow_mix"]["value"],
            digital_total,
        ),
        (
            "digital_share",
            {
                "by_count": _share(stats.digital_count, stats.digital_count + stats.cash_count),
                "by_value": _share(stats.digital_value_paisa, stats.digital_value_paisa + stats.cash_value_paisa),
            },
            targets["digital_share"]["value"],
            stats.digital_count + stats.cash_count,
        ),
    ]
    series = []
    for name, simulated, target, samples in rows:
        tolerance = float(targets[name]["tolerance"])
        error = nrmse(simulated, target) if samples else math.inf
        series.append(
            SeriesFit(name, simulated, target, error, tolerance, error <= tolerance, targets[name]["source"], samples)
        )
    return FitReport(tuple(series), long_horizon_envelopes(cal, stats, scenario))
