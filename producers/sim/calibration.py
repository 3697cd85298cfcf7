"""The calibration file (`producers/calibration/kp.json`): figures with their sources.

Every figure in the file is an object `{"value": ..., "source": "<key>"}` whose source key names
an entry of `sources` (the key `assumption` marks the project's own assumptions). Loading checks
that, then exposes the figures the simulation reads as one frozen object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from infra.errors import SandboxError
from producers.sim.records import check_plain_ascii

GENDERS: Final = ("male", "female")
AREAS: Final = ("urban", "rural")
AGE_BANDS: Final = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
INCOME_BANDS: Final = ("low", "lower_middle", "middle", "upper_middle", "high")
MERCHANT_CATEGORIES: Final = ("kiryana", "pharmacy", "transport", "restaurant", "ecommerce", "other")
SHOP_CATEGORIES: Final = ("kiryana", "pharmacy", "transport", "restaurant", "other")
TICKET_FLOWS: Final = (
    "p2p",
    "kiryana",
    "pharmacy",
    "transport",
    "restaurant",
    "other",
    "bill",
    "ecommerce",
    "request_to_pay",
    "cash_in",
    "wage",
    "g2p",
)


@dataclass(frozen=True)
class District:
    """One district: census population and urban share."""

    name: str
    population: int
    urban_share: float


@dataclass(frozen=True)
class Ticket:
    """A log-normal ticket-size distribution with the given mean (rupees) and sigma."""

    mean_rupees: float
    sigma: float


@dataclass(frozen=True)
class Calibration:
    """Every calibrated figure the simulation reads, already checked against its source list."""

    districts: tuple[District, ...]
    female_share: float
    age_bands: dict[str, float]
    income_bands: dict[str, float]
    employed_share_by_income: dict[str, float]
    g2p_share_of_low_income_women: float
    initial_account_share: float
    female_to_male_ratio: float
    urban_multiplier: float
    income_multiplier: dict[str, float]
    bank_share_by_income: dict[str, float]
    active_share_of_holders: float
    cnic_share: dict[str, float]
    phone_share: dict[str, float]
    phone_share_max: dict[str, float]
    phone_growth_per_year: dict[str, float]
    merchant_category_weights: dict[str, float]
    merchant_initial_account_share: dict[str, float]
    card_acceptance_share: float
    agents_per_10k_citizens: float
    employers_per_10k_citizens: float
    tickets: dict[str, Ticket]
    rates: dict[str, Any]
    behaviour: dict[str, Any]
    targets: dict[str, dict[str, Any]]
    sources: dict[str, str]

    def initial_inclusion(self) -> dict[str, float]:
        """Initial account ownership of men and women that averages to `initial_account_share`."""
        f = self.female_share
        male = self.initial_account_share / (1 - f + self.female_to_male_ratio * f)
        return {"male": male, "female": male * self.female_to_male_ratio}

    def check_access(self) -> None:
        """Raises ValueError unless the access figures are shares and phone ownership only rises."""
        for gender in GENDERS:
            shares = (self.cnic_share[gender], self.phone_share[gender], self.phone_share_max[gender])
            if not all(0 < s <= 1 for s in shares):
                raise ValueError(f"access shares for {gender} must lie in (0, 1]")
            if self.phone_share_max[gender] < self.phone_share[gender]:
                raise ValueError(f"access.phone_share_max.{gender} is below access.phone_share.{gender}")
            if self.phone_growth_per_year[gender] < 0:
                raise ValueError(f"access.phone_growth_per_year.{gender} must not be negative")


DEFAULT_PATH: Final = "kp.json"


def _figures(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every `{"value": ...}` object in the file, with its dotted path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "value" in node or ("name" in node and "population" in node):
            found.append((path, node))
        for key, child in node.items():
            found.extend(_figures(child, f"{path}.{key}" if path else key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found.extend(_figures(child, f"{path}[{i}]"))
    return found


def check_sources(raw: dict[str, Any]) -> None:
    """Raises ValueError unless every figure names a source listed under `sources`."""
    sources = raw.get("sources", {})
    for path, figure in _figures(raw):
        for field in ("source", "urban_source"):
            if field in figure and figure[field] not in sources:
                raise ValueError(f"{path}: unknown {field} '{figure[field]}'")
        if "source" not in figure:
            raise ValueError(f"{path}: figure without a 'source'")


def _value(raw: dict[str, Any], *path: str) -> Any:
    node: Any = raw
    for key in path:
        node = node[key]
    return node["value"]


def parse_calibration(raw: dict[str, Any]) -> Calibration:
    """Builds a Calibration from the decoded file. Raises ValueError/KeyError on a malformed file."""
    check_sources(raw)
    districts = tuple(
        District(check_plain_ascii(d["name"]), int(d["population"]), float(d["urban_share"]))
        for d in raw["population"]["districts"]
    )
    tickets = {name: Ticket(**_value(raw, "tickets", name)) for name in TICKET_FLOWS}
    cal = Calibration(
        districts=districts,
        female_share=_value(raw, "population", "female_share"),
        age_bands=_value(raw, "population", "age_bands"),
        income_bands=_value(raw, "population", "income_bands"),
        employed_share_by_income=_value(raw, "population", "employed_share_by_income"),
        g2p_share_of_low_income_women=_value(raw, "population", "g2p_share_of_low_income_women"),
        initial_account_share=_value(raw, "inclusion", "initial_account_share"),
        female_to_male_ratio=_value(raw, "inclusion", "female_to_male_ratio"),
        urban_multiplier=_value(raw, "inclusion", "urban_multiplier"),
        income_multiplier=_value(raw, "inclusion", "income_multiplier"),
        bank_share_by_income=_value(raw, "inclusion", "bank_share_by_income"),
        active_share_of_holders=_value(raw, "inclusion", "active_share_of_holders"),
        cnic_share=_value(raw, "access", "cnic_share"),
        phone_share=_value(raw, "access", "phone_share"),
        phone_share_max=_value(raw, "access", "phone_share_max"),
        phone_growth_per_year=_value(raw, "access", "phone_growth_per_year"),
        merchant_category_weights=_value(raw, "merchants", "category_weights"),
        merchant_initial_account_share=_value(raw, "merchants", "initial_account_share"),
        card_acceptance_share=_value(raw, "merchants", "card_acceptance_share"),
        agents_per_10k_citizens=_value(raw, "merchants", "agents_per_10k_citizens"),
        employers_per_10k_citizens=_value(raw, "merchants", "employers_per_10k_citizens"),
        tickets=tickets,
        rates={k: v["value"] for k, v in raw["rates"].items() if isinstance(v, dict)},
        behaviour={k: v["value"] for k, v in raw["behaviour"].items() if isinstance(v, dict)},
        targets={k: v for k, v in raw["targets"].items() if isinstance(v, dict)},
        sources=raw["sources"],
    )
    cal.check_access()
    return cal


def load_calibration(path: Path | None = None) -> Calibration:
    """Loads the packaged calibration, or the file at `path`. Raises SandboxError if unusable."""
    try:
        if path is None:
            text = resources.files("producers.calibration").joinpath(DEFAULT_PATH).read_text()
            where = "producers/calibration/kp.json"
        else:
            text = path.read_text()
            where = str(path)
        return parse_calibration(json.loads(text))
    except OSError as exc:
        raise SandboxError(f"cannot read calibration file {path}: {exc.strerror}", "check the path") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(
            f"calibration file {where} is malformed: {exc}",
            "fix the named entry (every figure is {'value': ..., 'source': <key in sources>})",
        ) from exc
