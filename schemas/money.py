"""Money in the sandbox: an integer count of paisa (PKR minor units), never a float.

One rupee is 100 paisa. Amounts travel as JSON integers; pydantic's strict mode rejects
floats, numeric strings and booleans so a rounding error can never enter the ledger.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

PAISA_PER_RUPEE: Final = 100

# The largest amount one event may carry: Rs 10 billion. Far above any retail payment,
# far below the 2**63 limit of PostgreSQL's bigint even after summing millions of them.
AMOUNT_PAISA_MAX: Final = 10_000_000_000 * PAISA_PER_RUPEE

Currency = Literal["PKR"]

Paisa = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=AMOUNT_PAISA_MAX,
        description="Amount as an integer count of paisa (1 PKR = 100 paisa). Never a float.",
    ),
]


def format_paisa(amount: int) -> str:
    """Formats paisa as a human-readable rupee string, e.g. 123456 -> 'Rs 1,234.56'."""
    sign = "-" if amount < 0 else ""
    rupees, paisa = divmod(abs(amount), PAISA_PER_RUPEE)
    return f"{sign}Rs {rupees:,}.{paisa:02d}"
