"""API tenants on the real PostgreSQL: keys authenticate until revoked, are stored only hashed, and the
`kpsandbox tenants` commands work end to end (producers/api/tenants.py, kpsandbox/commands/tenants.py)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
from collections.abc import AsyncIterator
from typing import Final
from uuid import uuid4

import asyncpg
import pytest

from infra.db import create_database
from infra.errors import SandboxError
from infra.settings import Settings, with_overrides
from producers.api.tenants import KEY_PATTERN, Tenant, Tenants, new_secret_key
from tests.integration.contract_support import KPSANDBOX, assert_two_line_error
from tests.integration.test_ledger_support import REPO, free_port, settle_env

CLI_TIMEOUT_S: Final = 60.0
CLI_KEY_LINE: Final = re.compile(r"^secret key: (sk_test_\S+)$", re.MULTILINE)


@pytest.fixture
async def connection(fresh_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new, migrated database."""
    connection = await asyncpg.connect(fresh_settings.dsn)
    yield connection
    await connection.close()


def _cli(config: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KPSANDBOX, "tenants", *args],
        env=settle_env(config, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def test_a_created_key_authenticates_until_revoked(connection: asyncpg.Connection) -> None:
    """create → the key authenticates that tenant; a wrong, malformed or revoked key gives None."""
    tenants = Tenants(connection)
    tenant, key = await tenants.create(name="Acme Wallet")
    assert KEY_PATTERN.fullmatch(key)
    assert re.fullmatch(r"ten_[0-9a-f]{16}", tenant.id)
    assert tenant.name == "Acme Wallet" and tenant.key_prefix == key[:12] and not tenant.revoked
    assert await tenants.authenticate(key=key) == tenant

    assert await tenants.authenticate(key=new_secret_key()) is None, "a well-formed key nobody holds"
    assert await tenants.authenticate(key=key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    for malformed in ("", key[:-1], key + "0", key.upper(), "Bearer " + key, key.replace("sk_test_", "sk_live_")):
        assert await tenants.authenticate(key=malformed) is None, malformed

    done = await tenants.revoke(name_or_id=tenant.id)
    assert not done.already_revoked and done.tenant.revoked and done.tenant.id == tenant.id
    assert await tenants.authenticate(key=key) is None


async def test_two_tenants_keep_their_own_keys(connection: asyncpg.Connection) -> None:
    """Each key names its own tenant; revoking one leaves the other working; list shows both, oldest first."""
    tenants = Tenants(connection)
    first, first_key = await tenants.create(name="first")
    second, second_key = await tenants.create(name="second")
    assert first_key != second_key and first.id != second.id
    assert await tenants.authenticate(key=first_key) == first
    assert await tenants.authenticate(key=second_key) == second

    await tenants.revoke(name_or_id="first")
    assert await tenants.authenticate(key=first_key) is None
    assert await tenants.authenticate(key=second_key) == second
    listed = await tenants.list()
    assert [t.name for t in listed] == ["first", "second"]
    assert [t.revoked for t in listed] == [True, False]


async def test_a_duplicate_name_is_refused_clearly(connection: asyncpg.Connection) -> None:
    """A second tenant of the same name is a SandboxError naming it; the first keeps working, no row is added."""
    tenants = Tenants(connection)
    tenant, key = await tenants.create(name="acme")
    with pytest.raises(SandboxError) as refused:
        await tenants.create(name="acme")
    assert refused.value.message == "a tenant named 'acme' exists"
    assert "kpsandbox tenants list" in refused.value.hint
    assert await tenants.list() == [tenant]
    assert await tenants.authenticate(key=key) == tenant


async def test_revoking_is_idempotent_and_unknown_tenants_are_errors(connection: asyncpg.Connection) -> None:
    """Revoking twice keeps the first time and says so; an unknown name or id is a SandboxError."""
    tenants = Tenants(connection)
    await tenants.create(name="acme")
    first = await tenants.revoke(name_or_id="acme")
    again = await tenants.revoke(name_or_id="acme")
    assert again.already_revoked and again.tenant.revoked_at == first.tenant.revoked_at
    for unknown in ("nobody", "ten_0000000000000000"):
        with pytest.raises(SandboxError, match="there is no tenant"):
            await tenants.revoke(name_or_id=unknown)


@pytest.mark.parametrize("name", ["", " acme", "acme ", "a" * 65, "acme/1", "acme\n", "ácme", "ten_0123456789abcdef"])
async def test_bad_names_are_refused_by_the_code_and_the_table(connection: asyncpg.Connection, name: str) -> None:
    """Names the rule refuses raise a SandboxError, and the table's own check refuses them too."""
    with pytest.raises(SandboxError):
        await Tenants(connection).create(name=name)
    with pytest.raises(asyncpg.CheckViolationError):
        await connection.execute(
            "INSERT INTO api_tenants (id, name, key_prefix, key_hash) VALUES ($1, $2, $3, $4)",
            "ten_00000000000000ff",
            name,
            "sk_test_abcd",
            bytes(32),
        )


async def test_names_at_the_limits_are_accepted(connection: asyncpg.Connection) -> None:
    """One character, 64 characters, and inner spaces, dots, dashes and underscores are valid names."""
    tenants = Tenants(connection)
    for name in ("a", "b" * 64, "Acme Pay-2.0_beta"):
        tenant, _ = await tenants.create(name=name)
        assert tenant.name == name


async def test_the_key_is_not_stored_in_clear(connection: asyncpg.Connection) -> None:
    """Neither the table's rows nor its raw pages contain the key; the stored hash is its SHA-256."""
    tenants = Tenants(connection)
    tenant, key = await tenants.create(name="acme")
    secret_part = key[12:]  # everything `tenants list` does not show
    rows = await connection.fetch("SELECT row_to_json(t)::text AS text, key_hash FROM api_tenants AS t")
    assert len(rows) == 1
    assert secret_part not in rows[0]["text"] and key not in rows[0]["text"]
    assert rows[0]["key_hash"] == hashlib.sha256(key.encode()).digest()

    # The table's raw pages, as PostgreSQL keeps them (pageinspect reads them through the buffer cache,
    # so no CHECKPOINT is needed; the sandbox role is a superuser).
    await connection.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    pages = await connection.fetch(
        "SELECT get_raw_page('api_tenants', n) AS page FROM generate_series(0, "
        "pg_relation_size('api_tenants') / current_setting('block_size')::int - 1) AS n"
    )
    on_disk = b"".join(row["page"] for row in pages)
    assert tenant.id.encode() in on_disk and key[:12].encode() in on_disk, "the grep sees what is stored"
    assert secret_part.encode() not in on_disk
    assert key.encode().hex().encode() not in on_disk


def test_an_unmigrated_database_is_named_as_such(settings: Settings) -> None:
    """The CLI against a database without migrations: two lines saying to run `kpsandbox up`."""
    dsn = asyncio.run(create_database(settings, f"t_tenants_bare_{uuid4().hex[:12]}"))
    run = _cli(with_overrides(settings, database_url=dsn), "list")
    assert run.returncode == 2
    error, hint = assert_two_line_error(run)
    assert "api_tenants is missing" in error and "kpsandbox up" in hint


def test_cli_create_list_revoke(fresh_settings: Settings) -> None:
    """`tenants create` prints a working key once; `list` shows prefix not key; `revoke` turns it off."""
    created = _cli(fresh_settings, "create", "acme")
    assert created.returncode == 0, created.stderr
    match = CLI_KEY_LINE.search(created.stdout)
    assert match, created.stdout
    key = match.group(1)
    assert KEY_PATTERN.fullmatch(key)
    assert "shown only this once" in created.stdout
    assert f"Authorization: Bearer {key}" in created.stdout
    tenant = asyncio.run(_authenticate(fresh_settings, key))
    assert tenant is not None and tenant.name == "acme"
    assert tenant.id in created.stdout

    listed = _cli(fresh_settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert tenant.id in listed.stdout and "acme" in listed.stdout and key[:12] in listed.stdout
    assert key[12:] not in listed.stdout

    revoked = _cli(fresh_settings, "revoke", "acme")
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked tenant acme ({tenant.id})" in revoked.stdout
    assert asyncio.run(_authenticate(fresh_settings, key)) is None
    again = _cli(fresh_settings, "revoke", tenant.id)
    assert again.returncode == 0 and "already revoked" in again.stdout

    listed = _cli(fresh_settings, "list")
    row = next(line for line in listed.stdout.splitlines() if tenant.id in line)
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}.*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row), row


def test_cli_errors_are_two_lines(fresh_settings: Settings) -> None:
    """Duplicate name, unknown tenant, bad name and unreachable PostgreSQL: exit 2, what went wrong + what to do."""
    assert _cli(fresh_settings, "create", "acme").returncode == 0
    duplicate = _cli(fresh_settings, "create", "acme")
    assert duplicate.returncode == 2
    error, _ = assert_two_line_error(duplicate)
    assert "a tenant named 'acme' exists" in error
    assert "sk_test_" not in duplicate.stdout

    unknown = _cli(fresh_settings, "revoke", "nobody")
    assert unknown.returncode == 2
    error, hint = assert_two_line_error(unknown)
    assert "no tenant named 'nobody'" in error and "tenants list" in hint

    bad_name = _cli(fresh_settings, "create", "no/slashes")
    assert bad_name.returncode == 2
    assert_two_line_error(bad_name)

    nowhere = f"postgresql://kpsandbox@127.0.0.1:{free_port()}/kpsandbox"
    unreachable = _cli(fresh_settings, "list", KPSANDBOX_DATABASE_URL=nowhere)
    assert unreachable.returncode == 2
    error, hint = assert_two_line_error(unreachable)
    assert "is not reachable" in error and "kpsandbox up" in hint


def test_cli_list_of_no_tenants_says_how_to_make_one(fresh_settings: Settings) -> None:
    """An empty table is a sentence pointing at `tenants create`, exit 0."""
    listed = _cli(fresh_settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert "kpsandbox tenants create" in listed.stdout


async def _authenticate(config: Settings, key: str) -> Tenant | None:
    connection = await asyncpg.connect(config.dsn)
    try:
        return await Tenants(connection).authenticate(key=key)
    finally:
        await connection.close()
