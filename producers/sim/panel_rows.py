"""The per-day panel's contract and its rows as the simulation accumulates them (no pyarrow here:
the simulation imports this on every run; `panel.py` turns the rows into Parquet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final

ACTIVE_WINDOW_DAYS: Final = 30  # an "active digital payer" paid digitally on one of the last 30 days

# (name, Arrow type, meaning): the panel's contract, in column order. Types are pyarrow's factory
# names (pa.string(), pa.int64() …): panel.py builds the schema, and only it imports pyarrow.
PANEL_COLUMNS: Final = (
    ("scenario", "string", "scenario name (baseline, digital-kp, or the .toml file's `name`)"),
    ("variant", "string", "lever override of a study, e.g. 'levers.women_onboarding=2'; '' if none"),
    ("seed", "int64", "the run's random seed"),
    ("date", "date32", "simulated calendar day (UTC)"),
    ("day", "int32", "day index from the run's first day, 0-based"),
    ("district", "string", "district (PBS census 2023 names; 'Rest of KP' for the remainder)"),
    ("gender", "string", "'female' or 'male'"),
    ("adults", "int32", "simulated adults in the cell (constant over a run)"),
    ("account_holders", "int32", "adults holding a wallet or bank account at the end of the day"),
    ("active_digital_payers_30d", "int32", "adults with a digital retail payment on this day or the 29 before"),
    ("digital_count", "int64", "digital retail payments by the cell's adults this day (expected to succeed)"),
    ("digital_value_paisa", "int64", "their value, paisa"),
    ("cash_count", "int64", "cash retail payments this day (cash purchases, bills in cash, COD deliveries)"),
    ("cash_value_paisa", "int64", "their value, paisa"),
    ("digital_share_count", "float64", "digital / (digital + cash) by count, this day; null if no payments"),
    ("digital_share_value", "float64", "digital / (digital + cash) by value, this day; null if no payments"),
    ("district_merchants", "int32", "merchants in the district (the same on both gender rows)"),
    ("district_merchants_digital", "int32", "of those, merchants accepting digital payment (holding an account)"),
)
_PAYMENT_COLUMNS: Final = ("digital_count", "digital_value_paisa", "cash_count", "cash_value_paisa")


@dataclass
class PanelRows:
    """Rows of the panel so far, column by column (cheap to append, cheap to turn into Arrow)."""

    districts: tuple[str, ...]
    genders: tuple[str, ...]
    columns: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = {name: [] for name, _, _ in PANEL_COLUMNS[3:]}

    def __len__(self) -> int:
        return len(self.columns["day"])

    def add_day(
        self,
        when: date,
        day: int,
        cells: dict[str, list[int]],
        merchants: list[int],
        merchants_digital: list[int],
    ) -> None:
        """Appends one row per district × gender. `cells` maps the per-cell column names (adults,
        account_holders, active_digital_payers_30d, digital/cash counts and values) to one value
        per cell, cell k = district * len(genders) + gender."""
        cols = self.columns
        per_gender = len(self.genders)
        for k in range(len(self.districts) * per_gender):
            d, g = divmod(k, per_gender)
            cols["date"].append(when)
            cols["day"].append(day)
            cols["district"].append(self.districts[d])
            cols["gender"].append(self.genders[g])
            for name, values in cells.items():
                cols[name].append(values[k])
            dc, dv, cc, cv = (cells[name][k] for name in _PAYMENT_COLUMNS)
            cols["digital_share_count"].append(dc / (dc + cc) if dc + cc else None)
            cols["digital_share_value"].append(dv / (dv + cv) if dv + cv else None)
            cols["district_merchants"].append(merchants[d])
            cols["district_merchants_digital"].append(merchants_digital[d])
