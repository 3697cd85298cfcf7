"""Amounts in the API: integer paisa, strictly.

A JSON float (`250.5`, even `250.0`) or a string (`"250"`) is refused rather than coerced: an
amount that is not exactly an integer count of paisa is a client bug worth hearing about.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

AMOUNT_MAX: Final = 10**15  # paisa; far above any real transfer, far below int64

Amount = Annotated[
    int,
    Field(strict=True, gt=0, le=AMOUNT_MAX, description="An amount in paisa (1 PKR = 100 paisa), a JSON integer."),
]
