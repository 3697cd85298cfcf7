"""What one `settle` run did: counted by the settler, printed by the CLI."""

from __future__ import annotations


class RunSummary:
    """What one `settle` run did."""

    def __init__(self) -> None:
        self.batches = 0
        self.requests = 0
        self.transfers = 0
        self.dead_lettered = 0
        self.fenced = 0
        self.expired = 0
        self.partitions: list[int] = []

    def line(self) -> str:
        """One readable line for the end of a run."""
        return (
            f"settled {self.requests} requests in {self.batches} batches: {self.transfers} transfers, "
            f"{self.expired} expired, {self.dead_lettered} dead-lettered, {self.fenced} fenced; "
            f"partitions {self.partitions or 'none'} assigned at the end"
        )
