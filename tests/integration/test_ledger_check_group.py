"""`ledger check` counts one consumer group's offsets, not every group's that shares the database."""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg
from typer import Typer
from typer.testing import CliRunner

from consumers.ledger.check import check_ledger
from infra.settings import Settings
from kpsandbox.commands.ledger import register
from schemas.topics import PAYMENT_REQUESTS

ONE_OUTCOME: Final = "every consumed request has exactly one outcome"
OTHER_GROUP: Final = "kp-ledger-replay"

# Two groups read the same requests topic into one database. Nothing was decided (no request
# rows), so each group's own accounting balances only if every message it read was a duplicate
# or dead-lettered; the replay group's counts do not, and must not leak into the ledger's.
OFFSETS: Final = """
INSERT INTO ledger_offsets (consumer_group, topic, partition, next_offset, messages, duplicates, dead_lettered)
VALUES ('kp-ledger', $1, 0, 5, 5, 2, 3), ($2, $1, 0, 7, 7, 0, 0)
"""


async def _seed(config: Settings) -> None:
    connection = await asyncpg.connect(config.dsn)
    try:
        await connection.execute(OFFSETS, config.topic(PAYMENT_REQUESTS), OTHER_GROUP)
    finally:
        await connection.close()


async def _one_outcome(config: Settings, group: str | None = None) -> tuple[bool, str]:
    """The "one outcome per request" finding, for `group` (None: check_ledger's default)."""
    topic = config.topic(PAYMENT_REQUESTS)
    connection = await asyncpg.connect(config.dsn)
    try:
        if group is None:
            findings = await check_ledger(connection, requests_topic=topic)
        else:
            findings = await check_ledger(connection, requests_topic=topic, group=group)
    finally:
        await connection.close()
    [finding] = [f for f in findings if f.name == ONE_OUTCOME]
    return finding.holds, finding.detail


def test_check_counts_only_the_named_group(fresh_settings: Settings) -> None:
    """The ledger's group balances although another group's offsets share the database; that group does not."""
    asyncio.run(_seed(fresh_settings))
    holds, detail = asyncio.run(_one_outcome(fresh_settings))
    assert holds, detail
    assert detail.startswith("5 consumed by kp-ledger")
    holds, detail = asyncio.run(_one_outcome(fresh_settings, OTHER_GROUP))
    assert not holds and detail.startswith(f"7 consumed by {OTHER_GROUP}")


def test_cli_check_takes_the_group(fresh_settings: Settings) -> None:
    """`ledger check` exits 0 for the default group and 1 with `--group` naming the unbalanced one."""
    asyncio.run(_seed(fresh_settings))
    app = Typer()
    register(app)
    env = {"KPSANDBOX_DATABASE_URL": fresh_settings.dsn, "KPSANDBOX_TOPIC_PREFIX": fresh_settings.topic_prefix}
    default = CliRunner().invoke(app, ["ledger", "check"], env=env)
    assert default.exit_code == 0, default.output
    other = CliRunner().invoke(app, ["ledger", "check", "--group", OTHER_GROUP], env=env)
    assert other.exit_code == 1, other.output
    assert OTHER_GROUP in other.output
