"""infra/docker-compose.yml stays valid and in step with the local setup (it cannot be run here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from infra.settings import KAFKA_VERSION_DEFAULT, Settings
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "infra" / "docker-compose.yml"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_four_services() -> None:
    """Kafka, PostgreSQL, Prometheus and Grafana are all declared."""
    assert set(_compose()["services"]) == {"kafka", "postgres", "prometheus", "grafana"}


def test_compose_kafka_is_kraft_and_same_version_as_local() -> None:
    """The Kafka image runs KRaft (no ZooKeeper) at the version the local setup pins."""
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION_DEFAULT}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(kafka["environment"])


def test_compose_ports_match_local_defaults(tmp_path: Path) -> None:
    """Host ports are the embedded defaults, so the same KPSANDBOX_* values work against compose."""
    settings = Settings(state_dir=tmp_path)
    services = _compose()["services"]
    published = {name: [p.split(":")[1] for p in svc.get("ports", [])] for name, svc in services.items()}
    assert str(settings.kafka_port) in published["kafka"]
    assert str(settings.postgres_port) in published["postgres"]
    assert str(settings.prometheus_port) in published["prometheus"]


def test_compose_mounted_files_exist() -> None:
    """Every bind-mounted config file or folder exists in the repository."""
    for service in _compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), source


def test_docker_prometheus_config_is_valid() -> None:
    """promtool accepts the Prometheus config compose mounts."""
    config = REPO_ROOT / "infra" / "prometheus" / "prometheus.docker.yml"
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
