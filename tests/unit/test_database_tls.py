"""PostgreSQL's TLS is set in KPSANDBOX_DATABASE_URL (libpq's sslmode / sslrootcert, read by asyncpg);
a wrong value fails when the settings load, naming what to fix, not at the first connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.settings import Settings


def test_a_ca_that_exists_and_a_known_mode_are_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = f"postgresql://u@db.example:5432/kp?sslmode=verify-full&sslrootcert={ca}"
    assert Settings(database_url=url).dsn == url  # handed to asyncpg as it is


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sslmode=verify-full&sslrootcert=/no/such/ca.pem", "sslrootcert=/no/such/ca.pem"),
        ("sslmode=verify_full", "sslmode=verify_full"),
        ("sslcert=/no/client.pem", "sslcert=/no/client.pem"),
    ],
)
def test_a_missing_file_or_unknown_mode_is_named(query: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=f"postgresql://u@db.example/kp?{query}")
    assert named in str(caught.value)
    assert "database_url" in str(caught.value)
