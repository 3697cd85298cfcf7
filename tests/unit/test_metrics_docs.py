"""The docs' metric tables are generated from the catalogue (schemas/metrics_docs.py) and current."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.metrics import JOBS, markdown_table
from schemas.metrics_docs import DOCS, REFRESH_COMMAND, refreshed, stale, tables
from tests.conftest import REPO_ROOT

# Which tables each document carries; every job's table appears somewhere.
EXPECTED: dict[str, list[str]] = {
    "README.md": ["kpsandbox", "kpsandbox-api"],
    "docs/metrics.md": ["kpsandbox"],
    "docs/ledger_metrics.md": ["kpsandbox-ledger"],
    "docs/webhooks.md": ["kpsandbox-webhooks"],
}


def test_every_metric_table_is_current() -> None:
    """Regenerating the tables changes nothing (else: run the refresh command)."""
    assert stale() == [], f"run `{REFRESH_COMMAND}`"


def test_each_doc_carries_its_tables_and_every_job_is_documented() -> None:
    """The marked tables are where the docs say they are, and no job is left undocumented."""
    assert set(DOCS) == set(EXPECTED)
    found = {doc: tables((REPO_ROOT / doc).read_text()) for doc in DOCS}
    assert found == EXPECTED
    assert {job for jobs in found.values() for job in jobs} == set(JOBS)


def test_refresh_replaces_only_the_marked_table() -> None:
    """A stale table is rewritten from the catalogue; the text around it is kept."""
    start, end = "<!-- metric-table:kpsandbox-api -->\n", "<!-- /metric-table -->\n"
    text = f"before\n{start}| old |\n{end}after\n"
    assert refreshed(text) == f"before\n{start}{markdown_table('kpsandbox-api')}\n{end}after\n"


def test_an_unknown_job_in_a_marker_names_the_known_ones() -> None:
    """A typo in a marker is an error naming the jobs, not a silently empty table."""
    with pytest.raises(ValueError, match="kpsandbox-ledger"):
        refreshed("<!-- metric-table:kpsandbox-ledgr -->\n<!-- /metric-table -->")


def test_stale_names_a_doc_whose_table_was_edited_by_hand(tmp_path: Path) -> None:
    """`stale` reports a document whose table differs from the catalogue."""
    for doc in DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / doc).write_text((REPO_ROOT / doc).read_text())
    edited = tmp_path / "docs/webhooks.md"
    edited.write_text(edited.read_text().replace("`kpsandbox_webhook_attempts_total`", "`kpsandbox_webhook_tries`"))
    assert stale(tmp_path) == ["docs/webhooks.md"]
