"""Settings validation, port checks and the local-service error paths (no services needed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from infra.errors import SandboxError, settings_error
from infra.local import kafka_config, kafka_jars, procs
from infra.local.prometheus import prometheus_config
from infra.settings import Settings, with_overrides
from schemas.topics import ACCOUNTS


def test_defaults_are_embedded_on_loopback(tmp_path: Path) -> None:
    """With nothing set, every service is local and bound to 127.0.0.1."""
    settings = Settings(state_dir=tmp_path)
    assert settings.kafka_embedded and settings.postgres_embedded and settings.prometheus_embedded
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.dsn.startswith("postgresql://kpsandbox@127.0.0.1:15432/")


def test_external_mode_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS / KPSANDBOX_DATABASE_URL switch those services to external."""
    monkeypatch.setenv("KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS", "broker1:9092,broker2:9092")
    monkeypatch.setenv("KPSANDBOX_DATABASE_URL", "postgresql://u:p@db:5432/kp")
    settings = Settings()
    assert not settings.kafka_embedded and not settings.postgres_embedded
    assert settings.bootstrap_servers == "broker1:9092,broker2:9092"
    assert settings.dsn == "postgresql://u:p@db:5432/kp"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KPSANDBOX_KAFKA_PORT", "abc"),
        ("KPSANDBOX_KAFKA_PORT", "80"),
        ("KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("KPSANDBOX_DATABASE_URL", "mysql://x"),
        ("KPSANDBOX_KAFKA_HEAP_MB", "4096"),
        ("KPSANDBOX_KAFKA_VERSION", "3.9.0"),
        ("KPSANDBOX_TOPIC_PREFIX", "Bad Prefix"),
        ("KPSANDBOX_LEDGER_METRICS_PORT", "abc"),
        ("KPSANDBOX_LEDGER_METRICS_PORT", "80"),
        ("KPSANDBOX_LEDGER_METRICS_PORT", "9464"),  # the metrics exporter's port
        ("KPSANDBOX_METRICS_HOST", ""),
        ("KPSANDBOX_METRICS_HOST", "127.0.0.1:9464"),
        ("KPSANDBOX_METRICS_HOST", "http://0.0.0.0"),
        ("KPSANDBOX_METRICS_HOST", "bad host"),
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """Each malformed value fails validation instead of surfacing later as a confusing error."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()


def test_metrics_settings_defaults_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's metrics port and the exporters' bind host default to 9465 and loopback; env overrides."""
    settings = Settings(state_dir=tmp_path)
    assert (settings.ledger_metrics_port, settings.metrics_host) == (9465, "127.0.0.1")
    monkeypatch.setenv("KPSANDBOX_LEDGER_METRICS_PORT", "9555")
    monkeypatch.setenv("KPSANDBOX_METRICS_HOST", "0.0.0.0")
    settings = Settings(state_dir=tmp_path)
    assert (settings.ledger_metrics_port, settings.metrics_host) == (9555, "0.0.0.0")
    for host in ("::", "::1", "metrics.internal", "localhost"):
        assert Settings(state_dir=tmp_path, metrics_host=host).metrics_host == host


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KPSANDBOX_METRICS_HOST", "127.0.0.1:9464"), ("KPSANDBOX_LEDGER_METRICS_PORT", "9464")],
)
def test_bad_metrics_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A refused metrics setting becomes a SandboxError whose message is one line naming the variable and value."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    error = settings_error(caught.value)
    assert f"{variable}={value!r}" in error.message and "\n" not in error.message
    assert "environment variable" in error.hint


def test_topic_prefix_and_overrides(tmp_path: Path) -> None:
    """Topic names carry the prefix; with_overrides gives a fresh object with recomputed properties."""
    base = Settings(state_dir=tmp_path)
    _ = base.dsn  # populate the cached property
    other = with_overrides(base, topic_prefix="t1.", postgres_port=25000)
    assert other.topic(ACCOUNTS) == "t1.kp.accounts.v1"
    assert ":25000/" in other.dsn and ":15432/" in base.dsn


def test_busy_port_is_detected_and_named() -> None:
    """A listening socket makes check_ports_free fail naming the port and its setting."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        assert not procs.port_is_free(port)
        with pytest.raises(SandboxError) as caught:
            procs.check_ports_free([procs.PortClaim(port, "Kafka", "KPSANDBOX_KAFKA_PORT")])
    assert str(port) in caught.value.message and "KPSANDBOX_KAFKA_PORT" in caught.value.hint
    assert procs.port_is_free(port)


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without java on PATH the error names the package to install and the external-Kafka option."""
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError) as caught:
        kafka_jars.check_java()
    assert "Java" in caught.value.message
    assert "openjdk-17-jre-headless" in caught.value.hint and "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS" in caught.value.hint


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Java older than 17 is reported with the version found."""
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: "/opt/java11/bin/java")
    old = subprocess.CompletedProcess([], 0, stdout="", stderr='openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setattr(kafka_jars.subprocess, "run", lambda *a, **k: old)
    with pytest.raises(SandboxError, match="Java 11"):
        kafka_jars.check_java()


def test_missing_maven_names_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without mvn (and no cached jars) the error says what to install and where jars are expected."""
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError) as caught:
        kafka_jars.fetch_jars(Settings(cache_dir=tmp_path))
    assert "maven" in caught.value.hint and str(tmp_path) in caught.value.hint


def test_cached_jars_skip_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """When the broker jar is cached, Maven is never run (the fetch happens once)."""
    libs = tmp_path / "kafka-4.4.0" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.4.0.jar").write_bytes(b"")
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: pytest.fail("mvn must not be looked up"))
    assert kafka_jars.fetch_jars(Settings(cache_dir=tmp_path)) == libs


def test_maven_failure_reason_is_the_first_real_error_line() -> None:
    """Maven's noisy output is reduced to the line that says why."""
    output = (
        "[INFO] x\n[ERROR] Failed to execute goal: could not resolve kafka_2.13:4.99.0\n[ERROR] [Help 1] http://x\n"
    )
    assert kafka_jars._maven_reason(output).startswith("Failed to execute goal")


def test_broker_config_binds_loopback_and_sizes_for_small_box(tmp_path: Path) -> None:
    """The generated server.properties runs KRaft on 127.0.0.1 with local replication factors."""
    text = kafka_config.server_properties(Settings(state_dir=tmp_path, kafka_port=29092), tmp_path / "data")
    assert "process.roles=broker,controller" in text
    assert "listeners=PLAINTEXT://127.0.0.1:29092," in text
    assert "group.initial.rebalance.delay.ms=0" in text
    assert "offsets.topic.replication.factor=1" in text


def test_prometheus_config_scrapes_metrics_port(tmp_path: Path) -> None:
    """The generated Prometheus config targets the sandbox exporter on KPSANDBOX_METRICS_PORT."""
    text = prometheus_config(Settings(state_dir=tmp_path, metrics_port=9555))
    assert "127.0.0.1:9555" in text and "job_name: kpsandbox" in text


def test_prometheus_config_scrapes_the_ledger_as_its_own_job(tmp_path: Path) -> None:
    """The generated config scrapes the ledger on KPSANDBOX_LEDGER_METRICS_PORT as job kpsandbox-ledger."""
    text = prometheus_config(Settings(state_dir=tmp_path, ledger_metrics_port=9556))
    jobs = {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}
    assert jobs["kpsandbox-ledger"]["static_configs"] == [{"targets": ["127.0.0.1:9556"]}]
    assert jobs["kpsandbox"]["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]


def test_prometheus_config_finds_more_ledger_processes_in_a_targets_file(tmp_path: Path) -> None:
    """`settle --processes N` lists processes 2..N in a file the ledger job watches; `up` starts it empty."""
    from infra.local.prometheus import PrometheusService, ledger_targets_file

    settings = Settings(state_dir=tmp_path)
    jobs = {job["job_name"]: job for job in yaml.safe_load(prometheus_config(settings))["scrape_configs"]}
    assert jobs["kpsandbox-ledger"]["file_sd_configs"][0]["files"] == [str(ledger_targets_file(settings))]
    assert "file_sd_configs" not in jobs["kpsandbox"]
    PrometheusService(settings).prepare()
    assert json.loads(ledger_targets_file(settings).read_text()) == []


def test_up_empties_a_ledger_targets_list_whose_settle_no_longer_runs(tmp_path: Path) -> None:
    """A `settle --processes N` killed with SIGKILL leaves processes 2..N listed: `up` empties the
    list (their targets would show as down, and LedgerDown fire, forever); a running settle's list stays."""
    from infra.local.prometheus import PrometheusService, ledger_targets_file, write_ledger_targets

    settings = Settings(state_dir=tmp_path)
    (tmp_path / "prometheus").mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_ledger_targets(settings, [9466, 9467], owner=gone.pid)
    PrometheusService(settings).prepare()
    assert json.loads(ledger_targets_file(settings).read_text()) == []
    write_ledger_targets(settings, [9466], owner=os.getpid())
    PrometheusService(settings).prepare()
    assert json.loads(ledger_targets_file(settings).read_text())[0]["targets"] == ["127.0.0.1:9466"]
    # A list cut short (a crash mid-write) or an owner file that is not a PID: nobody keeps it, so it is emptied.
    ledger_targets_file(settings).write_text('[{"targets": ["127.0.0.1:94')
    PrometheusService(settings).prepare()
    assert json.loads(ledger_targets_file(settings).read_text()) == []
    write_ledger_targets(settings, [9466], owner=os.getpid())
    owner = ledger_targets_file(settings).with_name(ledger_targets_file(settings).name + ".owner")
    assert owner.exists()
    owner.write_text("not a pid")
    PrometheusService(settings).prepare()
    assert json.loads(ledger_targets_file(settings).read_text()) == []


@pytest.mark.parametrize(
    ("host", "target"), [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"), ("::1", "[::1]")]
)
def test_prometheus_config_targets_the_metrics_host(tmp_path: Path, host: str, target: str) -> None:
    """Both jobs target KPSANDBOX_METRICS_HOST, or loopback when the exporters bind every interface."""
    text = prometheus_config(Settings(state_dir=tmp_path, metrics_host=host))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in yaml.safe_load(text)["scrape_configs"]}
    assert targets["kpsandbox"] == [f"{target}:9464"] and targets["kpsandbox-ledger"] == [f"{target}:9465"]


def test_running_prometheus_is_reloaded_with_the_regenerated_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`up` with Prometheus already running asks it to re-read the config (so new jobs are scraped), best effort."""
    from infra.local.prometheus import PrometheusService, console_flags

    service = PrometheusService(Settings(state_dir=tmp_path))
    monkeypatch.setattr(service, "_owned_pid", lambda: 4242)
    # It runs with today's flags (one without the console's is restarted: tests/unit/test_console_templates.py).
    monkeypatch.setattr(procs, "pid_cmdline", lambda _: " ".join(["prometheus", *console_flags()]))
    reloads: list[str] = []
    monkeypatch.setattr(service, "reload", lambda: reloads.append("reload"))
    assert service.start() is False and reloads == ["reload"]
    monkeypatch.setattr(service, "reload", lambda: _raise(ConnectionRefusedError()))
    assert service.start() is False  # a server that does not answer yet is not an error here


def _raise(error: BaseException) -> None:
    raise error


def test_owned_pid_ignores_foreign_processes(tmp_path: Path) -> None:
    """A PID file pointing at a process that is not ours (no state-folder marker) is not trusted."""
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("1\n")
    assert procs.owned_pid(pid_file, str(tmp_path)) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_promtool_accepts_generated_config(tmp_path: Path, host: str) -> None:
    """Prometheus's own checker accepts the config `up` generates (an IPv6 metrics host too)."""
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(Settings(state_dir=tmp_path, metrics_host=host)))
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unreachable_external_service_names_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`up` with an external PostgreSQL that does not answer fails fast, naming KPSANDBOX_DATABASE_URL."""
    from infra.local import stack

    monkeypatch.setattr(stack, "EXTERNAL_WAIT_S", 0.5)
    settings = Settings(
        state_dir=tmp_path,
        database_url="postgresql://u@127.0.0.1:1/db",
        kafka_bootstrap_servers="127.0.0.1:1",
        prometheus_url="http://127.0.0.1:1",
    )
    with pytest.raises(SandboxError) as caught:
        stack.up(settings)
    assert "127.0.0.1:1" in caught.value.message
    assert "KPSANDBOX_DATABASE_URL" in caught.value.hint


class _FakeService:
    """A local service that records what `up` asks of it; `busy` fails its start as a taken port does."""

    embedded = True

    def __init__(self, name: str, log: list[str], *, busy: bool = False) -> None:
        self.name, self._log, self._busy = name, log, busy

    def prepare(self) -> None:
        self._log.append(f"prepare {self.name}")

    def start(self) -> bool:
        if self._busy:
            raise SandboxError(f"port needed by {self.name} is already in use", "move it")
        self._log.append(f"start {self.name}")
        return True

    def stop(self) -> bool:
        self._log.append(f"stop {self.name}")
        return True


def test_up_stops_what_it_started_when_a_later_service_cannot_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A busy Kafka port found after PostgreSQL and Prometheus started: both are stopped again, so a
    failed `up` leaves no half-started stack holding its ports."""
    from infra.local import stack

    log: list[str] = []
    fakes = [_FakeService("postgres", log), _FakeService("prometheus", log), _FakeService("kafka", log, busy=True)]
    monkeypatch.setattr(stack, "services", lambda settings: fakes)
    with pytest.raises(SandboxError, match="kafka"):
        stack.up(Settings(state_dir=tmp_path))
    assert log[-2:] == ["stop prometheus", "stop postgres"], log
    assert "start postgres" in log and "start prometheus" in log
