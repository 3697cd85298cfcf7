"""Fetching Kafka from Maven Central: a failure says where the jars are expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import SandboxError
from infra.local.kafka_jars import fetch_jars, jars_present
from infra.settings import Settings


def test_unfetchable_release_names_maven_central_and_the_cache(tmp_path: Path) -> None:
    """A release Maven Central cannot deliver fails with a readable reason and the expected cache path."""
    settings = Settings(state_dir=tmp_path, cache_dir=tmp_path / "cache", kafka_version="4.99.0")
    with pytest.raises(SandboxError) as caught:
        fetch_jars(settings)
    assert "Maven Central" in caught.value.message and "4.99.0" in caught.value.message
    assert str(tmp_path / "cache" / "kafka-4.99.0" / "libs") in caught.value.hint
    assert not jars_present(tmp_path / "cache" / "kafka-4.99.0" / "libs")


def test_pinned_release_is_cached_with_the_broker_jar(settings: Settings) -> None:
    """The pinned 4.x release is in the cache with kafka_2.13 and its runtime dependencies."""
    libs = fetch_jars(settings)
    names = {p.name for p in libs.glob("*.jar")}
    assert f"kafka_2.13-{settings.kafka_version}.jar" in names
    assert any(n.startswith("kafka-clients-4.") for n in names) and any(n.startswith("scala-library") for n in names)
