"""From the metrics state to the figures the exporter shows: ratios, window sums, label names.

Every label combination in the catalogue is present (zero when nothing happened), so dashboards
and alerts see a series from the first scrape and `absent()` means the exporter is down.
"""

from __future__ import annotations

from consumers.metrics import labels as L
from consumers.metrics.aggregate import Aggregator, Figures
from schemas.topics import CATALOG


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _gender_share(gender: str) -> float:
    return {"female": L.FEMALE_SHARE, "male": 1.0 - L.FEMALE_SHARE}.get(gender, 0.0)


def figures(agg: Aggregator) -> Figures:
    """Computes every exported value from the state (cost: a few thousand dict operations)."""
    window = agg.window.totals(agg.now_day)
    payments = {
        labels: tuple(agg.payments.get((labels[0], labels[1], L.DISTRICT_INDEX[labels[2]], labels[3]), (0, 0)))
        for labels in L.payment_label_sets()
    }
    window_payments: dict[tuple[str, str], tuple[int, int]] = {}
    share: dict[tuple[str, str], float] = {}
    totals = {"cash": [0, 0], "digital": [0, 0]}
    for k, district in enumerate(L.DISTRICTS):
        for instrument in L.INSTRUMENTS:
            count, value = window.get(("pay", instrument, k), (0, 0))
            window_payments[(instrument, district)] = (count, value)
            totals[instrument][0] += count
            totals[instrument][1] += value
    for district in (*L.DISTRICTS, L.ALL):
        digital = totals["digital"] if district == L.ALL else window_payments[("digital", district)]
        cash = totals["cash"] if district == L.ALL else window_payments[("cash", district)]
        share[("count", district)] = _ratio(digital[0], digital[0] + cash[0])
        share[("value", district)] = _ratio(digital[1], digital[1] + cash[1])
    return Figures(
        payments=payments,  # type: ignore[arg-type]
        digital_share=share,
        window_payments=window_payments,
        **_inclusion(agg),
        active_users=_active(agg),
        acceptance=_acceptance(window),
        **_leakage(agg, window),
        dead_letters={reason: agg.dead_letters.get(reason, 0) for reason in L.DEAD_LETTER_REASONS},
        events={(spec.name, r): agg.events.get((spec.name, r), 0) for spec in CATALOG for r in L.EVENT_RESULTS},
        latency_buckets=list(agg.latency_buckets),
        latency_sum_s=agg.latency_sum_s,
        simulated_time_s=agg.now_s,
    )


def _inclusion(agg: Aggregator) -> dict[str, dict]:  # type: ignore[type-arg]
    """Adults with an account ÷ adults seen, per district and gender (cash-only adults split by
    the calibration's female share, since no cash event carries a gender)."""
    with_account: dict[tuple[str, str], int] = {}
    adults: dict[tuple[str, str], float] = {}
    inclusion: dict[tuple[str, str], float] = {}
    for k, district in enumerate(L.DISTRICTS):
        cash_only = agg.unbanked_count.get(k, 0)
        for gender in L.GENDERS:
            banked = agg.banked_count.get((k, gender), 0)
            with_account[(district, gender)] = banked
            adults[(district, gender)] = banked + cash_only * _gender_share(gender)
        banked_all = sum(agg.banked_count.get((k, g), 0) for g in L.GENDERS)
        with_account[(district, L.ALL)] = banked_all
        adults[(district, L.ALL)] = banked_all + cash_only
        for gender in (*L.INCLUSION_GENDERS, L.ALL):
            inclusion[(district, gender)] = _ratio(with_account[(district, gender)], adults[(district, gender)])
    for gender in (*L.INCLUSION_GENDERS, L.ALL):
        banked = sum(with_account[(d, gender)] for d in L.DISTRICTS)
        inclusion[(L.ALL, gender)] = _ratio(banked, sum(adults[(d, gender)] for d in L.DISTRICTS))
    return {"adults_with_account": with_account, "adults": adults, "inclusion": inclusion}


def _active(agg: Aggregator) -> dict[tuple[str, str], int]:
    first = agg.window.first_day(agg.now_day)
    out = {(d, g): 0 for d in L.DISTRICTS for g in L.GENDERS}
    for day, bucket in agg.active_by_day.items():
        if first <= day <= agg.now_day:
            for (k, gender), count in bucket.items():
                out[(L.DISTRICTS[k], gender if gender in L.GENDERS else "other")] += count
    return out


def _acceptance(window: dict) -> dict[str, float]:  # type: ignore[type-arg]
    """Per category: share of purchases (count) made where the merchant accepts a digital instrument."""
    out: dict[str, float] = {}
    for category in L.CATEGORIES:
        accepted = window.get(("accept", category, True), (0, 0))[0]
        refused = window.get(("accept", category, False), (0, 0))[0]
        out[category] = _ratio(accepted, accepted + refused)
    return out


def _leakage(agg: Aggregator, window: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    """Cash-out value ÷ (cash-in + digital inflow value) over the window, per district."""
    cumulative = {name: {d: agg.flows.get((name, k), 0) for k, d in enumerate(L.DISTRICTS)}
                  for name in ("cash_in", "cash_out", "inflow")}  # fmt: skip
    leakage: dict[str, float] = {}
    sums = {"cash_in": 0, "cash_out": 0, "inflow": 0}
    for k, district in enumerate(L.DISTRICTS):
        values = {name: window.get((name, k), (0, 0))[1] for name in sums}
        for name in sums:
            sums[name] += values[name]
        leakage[district] = _ratio(values["cash_out"], values["cash_in"] + values["inflow"])
    leakage[L.ALL] = _ratio(sums["cash_out"], sums["cash_in"] + sums["inflow"])
    return {
        "leakage": leakage,
        "cash_in": cumulative["cash_in"],
        "cash_out": cumulative["cash_out"],
        "inflow": cumulative["inflow"],
    }
