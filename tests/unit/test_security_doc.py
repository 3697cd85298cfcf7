"""docs/security.md tells the truth about the code: its ACL table is generated from
infra/kafka_principals.py and current, it shows the lines `tenants create` really prints, and the
README links it and lists every setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

from infra import kafka_principals
from infra.kafka_clients import PRINCIPALS, username
from infra.kafka_principals import REFRESH_COMMAND, markdown_table, refreshed, service_acls
from infra.kafka_tenants import TenantKafka
from infra.settings import Settings
from kpsandbox.commands.tenants import _print_kafka
from kpsandbox.console import console
from tests.conftest import REPO_ROOT

DOC: Final = REPO_ROOT / "docs" / "security.md"
README: Final = REPO_ROOT / "README.md"
START, END = "<!-- acl-table -->\n", "<!-- /acl-table -->"


def _rows(table: str) -> list[list[str]]:
    """The table's body rows as lists of cells (header and rule left out)."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_the_acl_table_is_current() -> None:
    """Regenerating the table changes nothing (else: run the refresh command)."""
    text = DOC.read_text()
    assert refreshed(text) == text, f"run `{REFRESH_COMMAND}`"


def test_the_table_shows_every_principal_and_every_grant() -> None:
    """Each sandbox principal has a row, and each of its bindings is in a row of its own resource."""
    rows = _rows(markdown_table())
    for principal in PRINCIPALS:
        assert any(row[0] == f"`{username(principal)}`" for row in rows), principal
    for principal, bindings in service_acls(Settings.model_construct(topic_prefix="")).items():
        for binding in bindings:
            assert any(
                row[0] == f"`{username(principal)}`"
                and row[1] == ("allow" if binding.allow else "**deny**")
                and binding.operation in row[2].split(", ")
                and row[3] == binding.resource_type
                and row[4] == f"`{binding.name}`"
                for row in rows
            ), binding
    assert any(row[0].startswith("`<tenant id>`") for row in rows)


def test_the_table_does_not_follow_the_readers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KPSANDBOX_TOPIC_PREFIX in the environment does not leak into the documented names."""
    monkeypatch.setenv("KPSANDBOX_TOPIC_PREFIX", "mine.")
    assert "mine." not in markdown_table()


def test_refresh_replaces_only_the_marked_table() -> None:
    """A stale table is rewritten; the text around it is kept; no markers is an error saying so."""
    text = f"before\n{START}| old |\n{END}\nafter\n"
    assert refreshed(text) == f"before\n{START}{markdown_table()}\n{END}\nafter\n"
    with pytest.raises(ValueError, match="acl-table"):
        refreshed("no table here\n")


def test_check_names_a_stale_doc_and_refresh_fixes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--check` exits 1 without writing; the plain command rewrites; then `--check` passes."""
    stale = tmp_path / "security.md"
    stale.write_text(f"# Security\n{START}| old |\n{END}\n")
    monkeypatch.setattr(kafka_principals, "DOC", stale)
    assert kafka_principals.main(["--check"]) == 1
    assert "| old |" in stale.read_text()
    assert kafka_principals.main([]) == 0
    assert kafka_principals.main(["--check"]) == 0
    assert markdown_table() in stale.read_text()


def test_the_doc_shows_the_lines_tenants_create_prints() -> None:
    """Every `name=` line `tenants create` prints for Kafka is in the doc's example, in order."""
    with console.capture() as captured:
        _print_kafka(TenantKafka("ten_0123456789abcdef", "pw", "requests", "outcomes"))
    names = [line.split("=", 1)[0] for line in captured.get().splitlines()]
    assert names == ["kafka_username", "kafka_password", "requests_topic", "outcomes_topic"]
    text = DOC.read_text()
    positions = [text.index(f"\n{name}=") for name in names]
    assert positions == sorted(positions)


def test_the_doc_names_the_commands_and_settings_it_documents() -> None:
    """Rotation, revocation and every Kafka security setting appear in the doc."""
    text = DOC.read_text()
    for phrase in ("kpsandbox tenants rotate-kafka", "kpsandbox tenants revoke", "KPSANDBOX_KAFKA_SECURITY=sasl_ssl"):
        assert phrase in text, phrase
    for field in Settings.model_fields:
        if field.startswith(("kafka_security", "kafka_sasl", "kafka_ssl")):
            assert f"KPSANDBOX_{field.upper()}" in text, field


def test_readme_links_the_doc_with_the_quick_start() -> None:
    """The README's security section links docs/security.md and shows the two commands."""
    text = README.read_text()
    section = text[text.index("## Security: a shared sandbox") :]
    section = section[: section.index("\n## ", 1)]
    assert "docs/security.md" in section
    assert "KPSANDBOX_KAFKA_SECURITY=sasl_ssl kpsandbox up" in section
    assert "kpsandbox tenants create" in section


def test_readme_settings_table_lists_every_setting() -> None:
    """Every Settings field has its KPSANDBOX_ variable in the README's settings table."""
    text = README.read_text()
    table = text[text.index("## Settings") :]
    table = table[: table.index("\n\n", table.index("| variable |"))]
    listed = set(re.findall(r"`(KPSANDBOX_[A-Z0-9_]+)`", table))
    missing = {f"KPSANDBOX_{field.upper()}" for field in Settings.model_fields} - listed
    assert not missing, f"add to the README's settings table: {', '.join(sorted(missing))}"
