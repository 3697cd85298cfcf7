"""What the API's row → answer functions read: a stored row, by column name.

asyncpg's Record and a plain dict both qualify. The functions live with the models they build
(schemas/api/payments.py, refunds.py) because two layers answer with them: the API's GETs and the
webhook events the views consumer records (consumers/webhooks/events.py), which must say the same.
"""

from __future__ import annotations

from typing import Any, Protocol


class Row(Protocol):
    """A stored row, read by column name."""

    def __getitem__(self, column: str, /) -> Any: ...
