"""A secured local broker (KPSANDBOX_KAFKA_SECURITY=sasl_ssl) of a test module's own, started
through the real `up` path on its own ports and state folder with PostgreSQL and Prometheus left
out (the shared test stack's PostgreSQL serves the tests that need one), and stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

from infra.local import kafka as local_kafka
from infra.local import stack
from infra.local.kafka import KafkaService
from infra.settings import Settings

SECURED_PORTS: Final = {"kafka_port": 39192, "kafka_controller_port": 39193}


async def _no_migrations(dsn: str) -> list[str]:
    return []


@contextmanager
def secured_broker(state_dir: Path, topic_prefix: str, *, run: Callable[..., Any] | None = None) -> Iterator[Settings]:
    """Settings of a running secured broker, after `up` made its topics and granted the ACLs.
    `run` wraps infra/local/kafka.py's subprocess.run (to record the command lines it ran)."""
    config = Settings(state_dir=state_dir, kafka_security="sasl_ssl", topic_prefix=topic_prefix, **SECURED_PORTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stack, "services", lambda settings: [KafkaService(settings)])
        patch.setattr(stack, "migrate", _no_migrations)
        patch.setattr(stack, "status", lambda settings: [KafkaService(settings).status()])
        if run is not None:
            patch.setattr(local_kafka.subprocess, "run", run)
        try:
            stack.up(config)
            yield config
        finally:
            KafkaService(config).stop()
