"""docs/operations.md: one runbook section per alert in the rules, each naming a console page that
exists and a command to run, and the README links to it."""

from __future__ import annotations

import re
from typing import Final

import yaml

from infra.local.prometheus import CONSOLES_DIR, RULES_DIR
from tests.conftest import REPO_ROOT

DOC: Final = REPO_ROOT / "docs" / "operations.md"
CONSOLES: Final = CONSOLES_DIR
SECTION: Final = re.compile(r"^### (\w+)\n(.*?)(?=^##|\Z)", re.MULTILINE | re.DOTALL)
CONSOLE_PAGE: Final = re.compile(r"/consoles/([\w-]+\.html)")


def _alerts() -> set[str]:
    groups = yaml.safe_load((RULES_DIR / "kpsandbox_rules.yml").read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def _runbook() -> dict[str, str]:
    text = DOC.read_text()
    runbook = text[text.index("\n## Runbook\n") :]
    return dict(SECTION.findall(runbook))


def test_every_alert_has_a_runbook_section_and_vice_versa() -> None:
    """The `### Name` sections under "## Runbook" are exactly the alerts of kpsandbox_rules.yml."""
    sections = set(_runbook())
    assert sections == _alerts(), f"no section: {_alerts() - sections}; no alert: {sections - _alerts()}"


def test_every_section_says_what_it_means_what_to_check_and_what_to_do() -> None:
    """Each section has Means / Check / Do, names an existing console page and a kpsandbox command."""
    for alert, body in _runbook().items():
        for part in ("**Means.**", "**Check.**", "**Do.**"):
            assert part in body, f"{alert}: no {part}"
        pages = CONSOLE_PAGE.findall(body)
        assert pages, f"{alert}: names no console page"
        for page in pages:
            assert (CONSOLES / page).is_file(), f"{alert}: /consoles/{page} does not exist"
        assert "`kpsandbox " in body, f"{alert}: names no command"


def test_every_console_page_mentioned_exists() -> None:
    """The overview of the doc lists pages the local Prometheus really serves."""
    pages = set(CONSOLE_PAGE.findall(DOC.read_text()))
    assert pages == {p.name for p in CONSOLES.glob("*.html")}


def test_readme_links_the_runbook() -> None:
    """The README points operators at docs/operations.md."""
    assert "docs/operations.md" in (REPO_ROOT / "README.md").read_text()
