"""The adoption model: who can open an account, who opens one, who becomes an active digital
payer, which merchants start taking QR, one calendar month at a time.

Only an *eligible* adult can open an account: one with a CNIC and a phone of their own. Phone
ownership rises logistically by gender towards a ceiling (women's below men's), so account
ownership can never exceed `cnic_share * phone_share(t)` of either gender. Each eligible
cash-only adult opens an account at the Bass diffusion hazard

    h = 1 - exp(-(p_i + q * A_dg * w_i) / 12)

with `p_i` the spontaneous (innovation) rate, scaled by connectivity (which also scales `q`),
the adult's area and income and, for women, by the female multiplier and the women-onboarding
lever; `q` the imitation rate and `A_dg` the share of account holders among adults of the same
district and gender (women learn from women); `w_i` the women-onboarding lever for a woman (1 for
a man): targeted onboarding reaches a woman through the same people who would show her how.
Connectivity (reach and awareness) saturates logistically at the scenario's `connectivity_max`
rather than compounding. Holders become active payers at a rate scaled by incentives and by how
many merchants in their district take QR. See docs/simulation.md for the parameters and their sources.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from producers.sim.calibration import GENDERS, Calibration
from producers.sim.population import (
    ACTIVE,
    CASH_ONLY,
    ELIGIBLE,
    FEMALE,
    HOLDER,
    Citizens,
    Merchants,
    mark_eligible,
    merchant_instruments,
    open_account,
    propensity,
)
from producers.sim.scenario import Scenario


@dataclass(frozen=True)
class MonthResult:
    """Who changed state in one monthly step."""

    opened_citizens: list[int]
    activated_citizens: int
    opened_merchants: list[int]


def logistic(start: float, ceiling: float, rate_per_year: float, years: float) -> float:
    """A logistic curve from `start` (at year 0) rising towards `ceiling` at `rate_per_year`:
    growth slows as the level nears the ceiling and never passes it."""
    if start >= ceiling:
        return ceiling
    return ceiling / (1 + (ceiling / start - 1) * math.exp(-rate_per_year * years))


def connectivity(scenario: Scenario, months_elapsed: float) -> float:
    """The connectivity multiplier after this many months: it rises logistically from the
    lever's starting level towards `connectivity_max` (saturates, never compounds)."""
    levers = scenario.levers
    years = months_elapsed / 12
    return logistic(levers.connectivity, levers.connectivity_max, levers.connectivity_growth_per_year, years)


def phone_share(cal: Calibration, scenario: Scenario, months_elapsed: float) -> dict[str, float]:
    """Share of men and women owning a phone after this many months (logistic towards the
    calibrated maximum; women's growth rate scaled by the women_phone_access lever)."""
    years = months_elapsed / 12
    shares = {}
    for gender in GENDERS:
        rate = cal.phone_growth_per_year[gender]
        if gender == "female":
            rate *= scenario.levers.women_phone_access
        shares[gender] = logistic(cal.phone_share[gender], cal.phone_share_max[gender], rate, years)
    return shares


def account_ceiling(cal: Calibration, scenario: Scenario, months_elapsed: float) -> dict[str, float]:
    """The expected share of men and women who can hold an account at all (CNIC and phone)."""
    phones = phone_share(cal, scenario, months_elapsed)
    return {gender: cal.cnic_share[gender] * phones[gender] for gender in GENDERS}


def qr_coverage(merchants: Merchants, districts: int) -> list[float]:
    """Share of merchants holding an account (taking QR) in each district."""
    total = [0] * districts
    with_qr = [0] * districts
    for m in range(len(merchants)):
        d = merchants.district[m]
        total[d] += 1
        with_qr[d] += merchants.has_account[m]
    return [with_qr[d] / total[d] if total[d] else 0.0 for d in range(districts)]


def holder_share(citizens: Citizens, districts: int) -> list[list[float]]:
    """Share of adults holding an account by district and gender (index [district][gender])."""
    people = [[0, 0] for _ in range(districts)]
    holders = [[0, 0] for _ in range(districts)]
    for i in range(len(citizens)):
        d, g = citizens.district[i], citizens.gender[i]
        people[d][g] += 1
        if citizens.stage[i] != CASH_ONLY:
            holders[d][g] += 1
    return [[h / p if p else 0.0 for h, p in zip(hs, ps, strict=True)] for hs, ps in zip(holders, people, strict=True)]


def monthly_step(
    cal: Calibration,
    scenario: Scenario,
    citizens: Citizens,
    merchants: Merchants,
    months_elapsed: float,
    rng: random.Random,
) -> MonthResult:
    """Applies one month of adoption and merchant QR rollout; returns who changed."""
    adoption, levers = scenario.adoption, scenario.levers
    districts = len(cal.districts)
    phones = phone_share(cal, scenario, months_elapsed)
    mark_eligible(citizens, [phones[gender] for gender in GENDERS])
    coverage = qr_coverage(merchants, districts)
    peers = holder_share(citizens, districts)
    # Connectivity scales both terms: a phone with data lets an adult open a wallet unprompted
    # and lets peers show them how.
    reach = connectivity(scenario, months_elapsed)
    spontaneous = adoption.innovation_per_year * reach
    imitation = adoption.imitation_per_year * reach
    female_factor = adoption.female_multiplier * levers.women_onboarding
    activation = adoption.activation_per_year * levers.incentives
    opened: list[int] = []
    activated = 0
    flags = citizens.flags
    for i in range(len(citizens)):
        stage = citizens.stage[i]
        if stage == ACTIVE:
            continue
        d = citizens.district[i]
        if stage == CASH_ONLY:
            if not flags[i] & ELIGIBLE:
                continue  # no CNIC or no phone of their own: cannot open an account
            g = citizens.gender[i]
            if g == FEMALE:
                rate = spontaneous * propensity(cal, citizens, i) * female_factor
                rate += imitation * peers[d][g] * levers.women_onboarding
            else:
                rate = spontaneous * propensity(cal, citizens, i) + imitation * peers[d][g]
            if rng.random() < 1 - math.exp(-rate / 12):
                open_account(cal, citizens, i, rng, HOLDER)
                opened.append(i)
        elif rng.random() < 1 - math.exp(-activation * (0.5 + coverage[d]) / 12):
            citizens.stage[i] = ACTIVE
            activated += 1
    rollout = 1 - math.exp(-_rate_from_share(levers.merchant_qr_rollout_per_year) / 12)
    opened_merchants: list[int] = []
    for m in range(len(merchants)):
        if not merchants.has_account[m] and rng.random() < rollout:
            merchants.has_account[m] = 1
            merchants.instruments[m] = merchant_instruments(cal, merchants.category[m], merchants.area[m], rng)
            opened_merchants.append(m)
    return MonthResult(opened, activated, opened_merchants)


def _rate_from_share(share_per_year: float) -> float:
    """The constant yearly hazard that converts `share_per_year` of the remaining pool in a year."""
    return -math.log(1 - min(share_per_year, 0.999))
