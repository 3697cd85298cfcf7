"""The agents, stored compactly: one byte per attribute per citizen in `array` columns.

A million citizens cost about 20 MB. Identifiers are never stored; they are derived from the
agent's index on demand (see `identifiers`).
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

from producers.sim.calibration import (
    AGE_BANDS,
    AREAS,
    GENDERS,
    INCOME_BANDS,
    MERCHANT_CATEGORIES,
    Calibration,
)

# Citizen account states.
NO_ACCOUNT: Final = 0
WALLET: Final = 1
BANK: Final = 2
# Adoption stages.
CASH_ONLY: Final = 0
HOLDER: Final = 1  # holds an account; receives money, pays bills, sends P2P, cashes out
ACTIVE: Final = 2  # also pays merchants by QR and shops online prepaid
# Citizen flags.
EMPLOYED: Final = 1
G2P_RECIPIENT: Final = 2
ELIGIBLE: Final = 4  # holds a CNIC and a phone of their own: can open an account (set, never cleared)
# Access ranks (see `Citizens.access`): a citizen owns a phone once the phone-ownership share of
# their gender exceeds rank / ACCESS_SCALE; citizens without a CNIC get NO_CNIC, never below it.
ACCESS_SCALE: Final = 65_535
NO_CNIC: Final = ACCESS_SCALE
# Merchant instruments (bit set); cash is always accepted.
STATIC_QR: Final = 1
DYNAMIC_QR: Final = 2
CARD: Final = 4
ONLINE: Final = 8
FEMALE: Final = GENDERS.index("female")
URBAN: Final = AREAS.index("urban")

BILLERS: Final[tuple[tuple[str, str], ...]] = (
    ("PESCO", "Peshawar"),  # electricity
    ("SNGPL", "Peshawar"),  # gas
    ("PTCL", "Peshawar"),  # landline and broadband
    ("JAZZ", "Peshawar"),  # mobile top-ups
    ("WSSP", "Peshawar"),  # water and sanitation
    ("KPEXCISE", "Peshawar"),  # vehicle tax and government fees
)
GOVERNMENT: Final[tuple[tuple[str, str], ...]] = (("BISP", "Peshawar"), ("KPFIN", "Peshawar"))


class Sampler:
    """Draws an index from fixed weights with one random number and a binary search."""

    __slots__ = ("_cdf",)

    def __init__(self, weights: list[float]) -> None:
        total = sum(weights)
        if total <= 0:
            raise ValueError("weights must sum to more than zero")
        self._cdf = [w / total for w in accumulate(weights)]
        # Rounding can leave the last entry just below 1; pinning it to 1 keeps every draw in
        # range (random() < 1) and picks exactly the index a clamp to the last one would.
        self._cdf[-1] = 1.0

    def draw(self, rng: random.Random) -> int:
        """An index, with probability proportional to its weight."""
        return bisect_right(self._cdf, rng.random())

    def draws(self, rng: random.Random, count: int) -> list[int]:
        """`count` indices, each drawn as `draw` draws one (in one call, for the hot paths)."""
        cdf, random_ = self._cdf, rng.random
        return [bisect_right(cdf, random_()) for _ in range(count)]


@dataclass
class Citizens:
    """Adults of KP, one array element per citizen per attribute."""

    district: array
    gender: array
    age_band: array
    area: array
    income: array
    flags: array
    account: array
    stage: array
    balance: array  # paisa, the simulation's own view (the ledger decides for real)
    employer: array
    holders: array  # indices of citizens holding an account, in opening order
    access: array  # rank in [0, ACCESS_SCALE): owns a phone once the share passes it (NO_CNIC: never)
    g2p_recipients: array
    employed: array

    def __len__(self) -> int:
        return len(self.district)


@dataclass
class Merchants:
    """Merchants: category, district and whether they hold an account (and so accept QR)."""

    district: array
    category: array
    area: array
    instruments: array
    has_account: array
    by_district_category: dict[tuple[int, int], array]
    by_category: dict[int, array]

    def __len__(self) -> int:
        return len(self.district)


@dataclass(frozen=True)
class Institutions:
    """Cash-in/out agents per district, employers, billers and government disbursers."""

    agents_by_district: tuple[tuple[int, ...], ...]
    agent_district: tuple[int, ...]
    employer_district: tuple[int, ...]


def build_citizens(cal: Calibration, count: int, employers: int, rng: random.Random) -> Citizens:
    """Draws `count` citizens from the calibrated distributions, with initial accounts assigned."""
    districts = Sampler([float(d.population) for d in cal.districts])
    urban_share = [d.urban_share for d in cal.districts]
    ages = Sampler([cal.age_bands[b] for b in AGE_BANDS])
    incomes = Sampler([cal.income_bands[b] for b in INCOME_BANDS])
    employed_share = [cal.employed_share_by_income[b] for b in INCOME_BANDS]
    female_share = cal.female_share
    small = {
        name: array("B") for name in ("district", "gender", "age_band", "area", "income", "flags", "account", "stage")
    }
    c = Citizens(
        **small,
        balance=array("q"),
        employer=array("I"),
        holders=array("I"),
        access=array("H"),
        g2p_recipients=array("I"),
        employed=array("I"),
    )
    for i in range(count):
        d = districts.draw(rng)
        g = FEMALE if rng.random() < female_share else 1 - FEMALE
        area = URBAN if rng.random() < urban_share[d] else 1 - URBAN
        income = incomes.draw(rng)
        flags = EMPLOYED if rng.random() < employed_share[income] else 0
        if g == FEMALE and income == 0 and rng.random() < cal.g2p_share_of_low_income_women:
            flags |= G2P_RECIPIENT
            c.g2p_recipients.append(i)
        if flags & EMPLOYED:
            c.employed.append(i)
        c.district.append(d)
        c.gender.append(g)
        c.age_band.append(ages.draw(rng))
        c.area.append(area)
        c.income.append(income)
        c.flags.append(flags)
        c.employer.append(rng.randrange(employers))
        # Drawn independently of area and income (an assumption): the ceilings bind by gender.
        has_cnic = rng.random() < cal.cnic_share[GENDERS[g]]
        c.access.append(int(rng.random() * ACCESS_SCALE) if has_cnic else NO_CNIC)
    c.account.extend(bytes(count))
    c.stage.extend(bytes(count))
    c.balance.frombytes(bytes(8 * count))
    mark_eligible(c, [cal.phone_share[gender] for gender in GENDERS])
    _assign_initial_accounts(cal, c, rng)
    return c


def propensity(cal: Calibration, c: Citizens, i: int) -> float:
    """How much more likely than average this citizen is to hold an account (area and income)."""
    urban = cal.urban_multiplier if c.area[i] == URBAN else 1.0
    return urban * cal.income_multiplier[INCOME_BANDS[c.income[i]]]


def open_account(cal: Calibration, c: Citizens, i: int, rng: random.Random, stage: int) -> None:
    """Gives citizen i an account (a bank account more often at higher incomes)."""
    bank_share = cal.bank_share_by_income[INCOME_BANDS[c.income[i]]]
    c.account[i] = BANK if rng.random() < bank_share else WALLET
    c.stage[i] = stage
    c.holders.append(i)


def mark_eligible(c: Citizens, phone_share: list[float]) -> int:
    """Flags ELIGIBLE every citizen with a CNIC whose access rank lies below their gender's
    phone-ownership share (index [gender]); returns how many were newly flagged. Shares only
    rise, so flags are only ever set."""
    thresholds = [share * ACCESS_SCALE for share in phone_share]
    flags, access, gender = c.flags, c.access, c.gender
    newly = 0
    for i in range(len(c)):
        if not flags[i] & ELIGIBLE and access[i] < thresholds[gender[i]]:
            flags[i] |= ELIGIBLE
            newly += 1
    return newly


def _assign_initial_accounts(cal: Calibration, c: Citizens, rng: random.Random) -> None:
    """Opens accounts among eligible adults so that men's and women's ownership (as a share of
    all adults) match the calibrated starting levels."""
    targets = cal.initial_inclusion()
    weight_sum = [0.0, 0.0]
    counts = [0, 0]
    for i in range(len(c)):
        counts[c.gender[i]] += 1
        if c.flags[i] & ELIGIBLE:
            weight_sum[c.gender[i]] += propensity(cal, c, i)
    scale = [targets[GENDERS[g]] * counts[g] / weight_sum[g] if weight_sum[g] else 0.0 for g in range(len(GENDERS))]
    for i in range(len(c)):
        if c.flags[i] & ELIGIBLE and rng.random() < scale[c.gender[i]] * propensity(cal, c, i):
            active = rng.random() < cal.active_share_of_holders
            open_account(cal, c, i, rng, ACTIVE if active else HOLDER)


def build_merchants(cal: Calibration, count: int, rng: random.Random) -> Merchants:
    """Draws merchants by district (population weight) and category; some start with QR accounts."""
    districts = Sampler([float(d.population) for d in cal.districts])
    categories = Sampler([cal.merchant_category_weights[k] for k in MERCHANT_CATEGORIES])
    m = Merchants(array("B"), array("B"), array("B"), array("B"), array("B"), {}, {})
    for i in range(count):
        d = districts.draw(rng)
        cat = categories.draw(rng)
        # Shops cluster in towns: a merchant is urban twice as often as a resident (assumption).
        area = URBAN if rng.random() < min(1.0, 2 * cal.districts[d].urban_share) else 1 - URBAN
        m.district.append(d)
        m.category.append(cat)
        m.area.append(area)
        has = rng.random() < cal.merchant_initial_account_share[MERCHANT_CATEGORIES[cat]]
        m.has_account.append(1 if has else 0)
        m.instruments.append(merchant_instruments(cal, cat, area, rng) if has else 0)
        m.by_district_category.setdefault((d, cat), array("I")).append(i)
        m.by_category.setdefault(cat, array("I")).append(i)
    return m


def merchant_instruments(cal: Calibration, category: int, area: int, rng: random.Random) -> int:
    """The non-cash instruments a merchant takes once it holds an account."""
    if MERCHANT_CATEGORIES[category] == "ecommerce":
        return ONLINE
    bits = STATIC_QR
    if area == URBAN and rng.random() < 0.5:
        bits |= DYNAMIC_QR
    if rng.random() < cal.card_acceptance_share:
        bits |= CARD
    return bits


def build_institutions(cal: Calibration, citizens: int, rng: random.Random) -> Institutions:
    """Agents (at least one per district) and employers, spread by district population."""
    districts = Sampler([float(d.population) for d in cal.districts])
    n_agents = max(len(cal.districts), round(citizens * cal.agents_per_10k_citizens / 10_000))
    agent_district = list(range(len(cal.districts)))
    agent_district += [districts.draw(rng) for _ in range(n_agents - len(agent_district))]
    by_district: list[list[int]] = [[] for _ in cal.districts]
    for a, d in enumerate(agent_district):
        by_district[d].append(a)
    n_employers = employer_count(cal, citizens)
    return Institutions(
        agents_by_district=tuple(tuple(x) for x in by_district),
        agent_district=tuple(agent_district),
        employer_district=tuple(districts.draw(rng) for _ in range(n_employers)),
    )


def employer_count(cal: Calibration, citizens: int) -> int:
    """How many employers a population of this size has (at least one)."""
    return max(1, round(citizens * cal.employers_per_10k_citizens / 10_000))
