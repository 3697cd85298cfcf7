"""infra/docker-compose.yml stays valid and in step with the local setup (it cannot be run here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from infra.local.prometheus import prometheus_config
from infra.settings import KAFKA_VERSION_DEFAULT, Settings
from schemas.metrics import JOBS
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


def _docker_scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load((REPO_ROOT / "infra" / "prometheus" / "prometheus.docker.yml").read_text())
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_docker_prometheus_scrapes_every_exporter_on_the_default_ports(tmp_path: Path) -> None:
    """Compose's Prometheus scrapes each catalogue job on the host at the port its exporter listens on by
    default, exactly as the local Prometheus config does (same jobs, same ports)."""
    settings = Settings(state_dir=tmp_path)
    local = {
        job["job_name"]: [target.rpartition(":")[2] for static in job["static_configs"] for target in static["targets"]]
        for job in yaml.safe_load(prometheus_config(settings))["scrape_configs"]
    }
    targets = _docker_scrape_targets()
    assert set(targets) == set(local) == {"prometheus", *JOBS}
    assert targets["kpsandbox"] == [f"host.docker.internal:{settings.metrics_port}"]
    assert targets["kpsandbox-ledger"] == [f"host.docker.internal:{settings.ledger_metrics_port}"]
    assert targets["kpsandbox-api"] == [f"host.docker.internal:{settings.api_port}"]
    assert targets["kpsandbox-webhooks"] == [f"host.docker.internal:{settings.webhooks_metrics_port}"]
    for job in JOBS:
        assert [target.rpartition(":")[2] for target in targets[job]] == local[job], job


def test_compose_prometheus_reaches_the_host_on_linux() -> None:
    """host.docker.internal is mapped to the host gateway, and the header says to bind the exporters beyond loopback."""
    prometheus = _compose()["services"]["prometheus"]
    assert "host.docker.internal:host-gateway" in prometheus["extra_hosts"]
    header = [line for line in COMPOSE.read_text().splitlines() if line.startswith("#")]
    assert any("export KPSANDBOX_METRICS_HOST=0.0.0.0" in line for line in header)
    assert any("export KPSANDBOX_API_HOST=0.0.0.0" in line for line in header)
