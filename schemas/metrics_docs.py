"""`python -m schemas.metrics_docs`: rewrites the docs' metric tables from the catalogue (schemas/metrics.py).

A table lives between two marker comments, the job named in the first:

    <!-- metric-table:kpsandbox-ledger -->
    | name | type | labels | meaning |
    ...
    <!-- /metric-table -->

Everything between them is replaced by `markdown_table(job)`; the rest of the file is left alone.
`--check` changes nothing and exits 1 naming the stale files (tests/unit/test_metric_catalogue.py
runs the same check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Final, cast

from schemas.metrics import JOBS, Job, markdown_table

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = ("README.md", "docs/metrics.md", "docs/ledger_metrics.md", "docs/webhooks.md")
REFRESH_COMMAND: Final = "python -m schemas.metrics_docs"
TABLE: Final = re.compile(r"(<!-- metric-table:([a-z-]+) -->\n)(.*?)(<!-- /metric-table -->)", re.DOTALL)


def refreshed(text: str) -> str:
    """`text` with every marked table regenerated; ValueError naming an unknown job."""

    def table(match: re.Match[str]) -> str:
        job = match.group(2)
        if job not in JOBS:
            raise ValueError(f"unknown metric job '{job}' in a metric-table marker: use one of {', '.join(JOBS)}")
        return f"{match.group(1)}{markdown_table(cast(Job, job))}\n{match.group(4)}"

    return TABLE.sub(table, text)


def tables(text: str) -> list[str]:
    """The jobs whose tables `text` holds, in order."""
    return [match.group(2) for match in TABLE.finditer(text)]


def stale(root: Path = REPO_ROOT) -> list[str]:
    """The docs (paths relative to `root`) whose tables differ from the catalogue."""
    return [doc for doc in DOCS if refreshed(text := (root / doc).read_text()) != text]


def main(argv: list[str]) -> int:
    """Rewrites the stale docs (or, with --check, only names them); exit status 1 when --check finds any."""
    outdated = stale()
    if "--check" in argv:
        for doc in outdated:
            print(f"{doc}: its metric tables are stale; run `{REFRESH_COMMAND}`")
        return 1 if outdated else 0
    for doc in outdated:
        path = REPO_ROOT / doc
        path.write_text(refreshed(path.read_text()))
        print(f"rewrote the metric tables of {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
