"""PostgreSQL plumbing: is it there, does our database exist, and are migrations applied.

Migrations are plain SQL files in infra/migrations/, applied in name order, each exactly once,
each in its own transaction, and recorded in `schema_migrations`. An advisory lock keeps two
processes from migrating at the same time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import asyncpg

from infra.errors import SandboxError
from infra.settings import Settings

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT_S: Final = 5.0
MIGRATION_LOCK_KEY: Final = 0x6B70_7362  # "kpsb": any fixed 64-bit number unique to us

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def _server_version(dsn: str) -> str | None:
    try:
        connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    try:
        version = await connection.fetchval("SHOW server_version")
        return f"PostgreSQL {version.split()[0]}"
    finally:
        await connection.close()


def database_answers(dsn: str) -> str | None:
    """The server's version string when the DSN accepts a connection, else None."""
    return asyncio.run(_server_version(dsn))


def admin_dsn(settings: Settings, database: str = "postgres") -> str:
    """DSN of the local server's superuser (trust auth on 127.0.0.1)."""
    return f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/{database}"


async def _ensure_database(settings: Settings) -> None:
    connection = await asyncpg.connect(admin_dsn(settings), timeout=CONNECT_TIMEOUT_S)
    try:
        role = settings.postgres_user
        if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            # The sandbox role creates databases for tests and replays, hence SUPERUSER locally.
            await connection.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", settings.postgres_db):
            await connection.execute(f'CREATE DATABASE "{settings.postgres_db}" OWNER "{role}"')
    finally:
        await connection.close()


def ensure_database(settings: Settings) -> None:
    """Creates the sandbox role and database on the local server if they are missing."""
    asyncio.run(_ensure_database(settings))


def migration_files() -> list[Path]:
    """Every migration, in the order it is applied."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


async def migrate(dsn: str) -> list[str]:
    """Applies pending migrations; returns the names applied now. Safe to run concurrently."""
    try:
        connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise database_unreachable(dsn) from error
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        # Only write when something is missing: a migrated, read-only database must not fail here.
        if await connection.fetchval("SELECT to_regclass('schema_migrations')") is None:
            await connection.execute(CREATE_MIGRATIONS_TABLE)
        done = {row["name"] for row in await connection.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for path in migration_files():
            if path.name in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
        return applied
    except asyncpg.PostgresError as error:
        raise SandboxError(
            f"the database's migrations could not be applied: {type(error).__name__}: {error}",
            "connect as a user that may create tables in a writable database (KPSANDBOX_DATABASE_URL)",
        ) from error
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await connection.close()


async def create_database(settings: Settings, name: str) -> str:
    """Creates an empty database on the same server as settings.dsn; returns its DSN."""
    connection = await asyncpg.connect(settings.dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    head, _, _ = settings.dsn.rpartition("/")
    return f"{head}/{name}"


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool's `reset`: releases a connection without asyncpg's reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL), one round trip saved per acquire. Only for pools whose users set no session
    state — no SET, LISTEN, session advisory lock or cursor outside a transaction; asyncpg still rolls
    back a transaction left open before calling this."""
    del connection


def database_unreachable(dsn: str) -> SandboxError:
    """The one error every database client in the sandbox raises when PostgreSQL does not answer."""
    return SandboxError(
        f"PostgreSQL at {dsn.rpartition('@')[2]} is not reachable",
        "start the local services with `kpsandbox up`, or check KPSANDBOX_DATABASE_URL",
    )


async def require_table(connection: asyncpg.Connection, table: str) -> None:
    """Raises a SandboxError when the database lacks a table our migrations create."""
    if not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
        raise SandboxError(
            f"the table {table} is missing in this database — migrations were not applied",
            "run `kpsandbox up` (it applies migrations, also to an external KPSANDBOX_DATABASE_URL)",
        )
