"""docs/metrics.md's catalogue table is exactly what the exporter exports (names, types, labels)."""

from __future__ import annotations

import re
from pathlib import Path

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import new_registry
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "metrics.md"
README = REPO_ROOT / "README.md"
ROW = re.compile(r"^\| `(kpsandbox_[a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


def _documented(doc: Path = DOC) -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for line in doc.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            rows[name] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    return rows


def _exported() -> dict[str, tuple[str, frozenset[str]]]:
    lag = {("kp-metrics", "kp.cash.v1", 0): 0}
    out = {}
    for family in new_registry(Aggregator, lambda: lag).collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        out[name] = (family.type, frozenset(labels))
    return out


def test_catalogue_table_matches_the_exporter() -> None:
    """Every exported metric is documented with its type and labels, and nothing else is."""
    documented, exported = _documented(), _exported()
    assert len(documented) >= 15
    assert documented == exported


def test_readme_catalogue_matches_the_exporter() -> None:
    """The README's metric catalogue lists exactly the exported metrics, types and labels."""
    assert _documented(README) == _exported()


def test_every_name_follows_prometheus_conventions() -> None:
    """kpsandbox_ prefix; counters end in _total; units are base units (seconds, paisa, ratio)."""
    for name, (kind, _) in _exported().items():
        assert name.startswith("kpsandbox_")
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|milliseconds|rupees|percent)\b", name), name
