"""Real services for integration tests: Kafka, PostgreSQL and Prometheus, started once per session.

The test stack runs on its own ports and state folder (`.kpsandbox-test/`), so it never touches
a developer's own `kpsandbox up`. It is stopped at the end of the session unless
KPSANDBOX_TEST_KEEP_UP=1 (faster reruns). With KPSANDBOX_TEST_EXTERNAL=1 the tests use the
KPSANDBOX_* environment as is (your own Kafka/PostgreSQL) and start nothing.

Isolation: every test that needs it gets `fresh_settings`, a new topic prefix with the catalog
topics created and a new, migrated PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest

from infra.db import create_database, migrate
from infra.kafka_admin import ensure_topics
from infra.local import stack
from infra.settings import Settings, load_settings, with_overrides
from tests.conftest import REPO_ROOT, RUN_ID
from tests.integration.operator_support import operator_stack  # noqa: F401  (one session fixture for every module)

TEST_PORTS = {
    "kafka_port": 39092,
    "kafka_controller_port": 39093,
    "postgres_port": 35432,
    "prometheus_port": 39090,
    "metrics_port": 39464,
    "ledger_metrics_port": 39465,
    "webhooks_metrics_port": 39466,
    "api_port": 38080,
}
_fresh_counter = itertools.count()


def _test_stack_settings() -> Settings:
    if os.environ.get("KPSANDBOX_TEST_EXTERNAL") == "1":
        return with_overrides(load_settings(), topic_prefix=f"t{RUN_ID}.")
    return Settings(state_dir=REPO_ROOT / ".kpsandbox-test", topic_prefix=f"t{RUN_ID}.", **TEST_PORTS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the `integration` marker. Tests that use
    `operator_stack` run last: its apps hold the exporter ports (TEST_PORTS) until the session ends."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: "operator_stack" in getattr(item, "fixturenames", ()))  # stable: order kept


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings of the running test stack; catalog topics exist under this run's prefix; migrated."""
    config = _test_stack_settings()
    stack.up(config)
    asyncio.run(ensure_topics(config))
    yield config
    external = os.environ.get("KPSANDBOX_TEST_EXTERNAL") == "1"
    if not external and os.environ.get("KPSANDBOX_TEST_KEEP_UP") != "1":
        stack.down(config)


@pytest.fixture
def fresh_settings(settings: Settings) -> Settings:
    """Settings with a brand-new topic prefix (topics created) and a new migrated database."""
    n = next(_fresh_counter)
    prefix = f"t{RUN_ID}f{n}."
    database = f"t_{RUN_ID}_{n}"
    dsn = asyncio.run(create_database(settings, database))
    config = with_overrides(settings, topic_prefix=prefix, database_url=dsn)
    asyncio.run(migrate(config.dsn))
    asyncio.run(ensure_topics(config))
    return config
