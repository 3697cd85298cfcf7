"""Every label value the exporter may emit, so label cardinality is bounded and written down.

No label ever carries an account, payment, order or holder id. Districts are the calibration's
district list (kept equal to `producers/calibration/kp.json` by a unit test, not imported: a
consumer does not depend on the producers); anything else is reported as `other`.
"""

from __future__ import annotations

from typing import Final, get_args

from schemas.accounts import MerchantCategory
from schemas.deadletter import DeadLetterReason
from schemas.payments import Rail

DISTRICT_OTHER: Final = "other"
DISTRICTS: Final[tuple[str, ...]] = (
    "Peshawar",
    "Mardan",
    "Swat",
    "Swabi",
    "Charsadda",
    "Dera Ismail Khan",
    "Mansehra",
    "Nowshera",
    "Lower Dir",
    "Abbottabad",
    "Other KP districts",
    DISTRICT_OTHER,
)
DISTRICT_INDEX: Final[dict[str, int]] = {name: k for k, name in enumerate(DISTRICTS)}
OTHER_INDEX: Final = DISTRICT_INDEX[DISTRICT_OTHER]
ALL: Final = "all"  # the label value of a total over every district (or gender)

GENDERS: Final[tuple[str, ...]] = ("female", "male", "other")
# Inclusion is reported for the two genders the calibration models, plus the total.
INCLUSION_GENDERS: Final[tuple[str, ...]] = ("female", "male")
# Share of adults who are women (calibration `population.female_share`); used to split the
# cash-only adults, whose gender no event carries, between women and men.
FEMALE_SHARE: Final = 0.49

RAILS: Final[tuple[str, ...]] = get_args(Rail)
CASH_RAIL: Final = "cash"
INSTRUMENTS: Final = ("cash", "digital")
OUTCOMES: Final = ("settled", "rejected", "cash")
CATEGORIES: Final[tuple[str, ...]] = get_args(MerchantCategory)
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = get_args(DeadLetterReason)
BASES: Final = ("count", "value")
EVENT_RESULTS: Final = ("counted", "duplicate", "unreadable")

# The retail payments that a cash purchase could have been: the basis of the digital share.
# Wages and G2P disbursements are inflows, not purchases; they feed the cash-out leakage ratio.
RETAIL_KINDS: Final = frozenset(
    {"p2p", "p2m_static_qr", "p2m_dynamic_qr", "bill_payment", "ecommerce", "request_to_pay"}
)
CITIZEN_KINDS: Final = frozenset({"citizen_wallet", "citizen_bank"})
DIGITAL_INSTRUMENTS: Final = frozenset({"static_qr", "dynamic_qr", "card", "online"})


def district_index(name: str) -> int:
    """Index of a district in DISTRICTS; an unknown district counts as `other`."""
    return DISTRICT_INDEX.get(name, OTHER_INDEX)


def payment_label_sets() -> list[tuple[str, str, str, str]]:
    """Every (instrument, rail, district, outcome) the payment counters export, populated or not."""
    digital = [("digital", r, d, o) for r in RAILS for d in DISTRICTS for o in ("settled", "rejected")]
    cash = [("cash", CASH_RAIL, d, "cash") for d in DISTRICTS]
    return digital + cash
