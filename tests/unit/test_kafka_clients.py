"""The one Kafka client factory: every client goes through it, and it secures them from settings alone."""

from __future__ import annotations

import ast
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Final

import certifi
import pytest
from pydantic import ValidationError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.settings import Settings, settings_env, with_overrides
from tests.conftest import REPO_ROOT

CLIENT_PACKAGES: Final = ("producers", "consumers", "infra", "kpsandbox", "bench", "tests")
FACTORY: Final = Path("infra/kafka_clients.py")
AIOKAFKA_CLIENTS: Final = frozenset({"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"})
LIBRDKAFKA_CLIENTS: Final = frozenset({"Producer", "Consumer", "AdminClient"})
PASSWORD: Final = "s3cret-Hunter2-pw"
EXTERNAL: Final = "broker.example.net:9093"


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def direct_clients(source: str) -> list[str]:
    """Where a module builds a Kafka client itself instead of through infra/kafka_clients.py.

    aiokafka: any call of AIOKafkaProducer/Consumer/AdminClient. confluent-kafka: a call of a
    client class imported from confluent_kafka, in a function that never calls librdkafka_config.
    """
    tree = ast.parse(source)
    librdkafka = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("confluent_kafka")
        for alias in node.names
        if alias.name in LIBRDKAFKA_CLIENTS
    }
    found = [
        f"line {node.lineno}: {_called_name(node)}("
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) in AIOKAFKA_CLIENTS
    ]
    for scope in ast.walk(tree):
        if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        calls = [node for node in ast.walk(scope) if isinstance(node, ast.Call)]
        if any(_called_name(call) == "librdkafka_config" for call in calls):
            continue
        found += [f"line {call.lineno}: {_called_name(call)}(" for call in calls if _called_name(call) in librdkafka]
    return found


def test_no_module_builds_a_kafka_client_outside_the_factory() -> None:
    """Every aiokafka and confluent-kafka client in the project is built by infra/kafka_clients.py."""
    offenders = {
        str(path.relative_to(REPO_ROOT)): hits
        for package in CLIENT_PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if path.relative_to(REPO_ROOT) != FACTORY
        if (hits := direct_clients(path.read_text()))
    }
    assert not offenders, f"build these through infra.kafka_clients: {offenders}"


def test_the_scan_finds_a_direct_client() -> None:
    """The scan above can fail: it sees both kinds of direct construction, and passes the factory's."""
    planted = (
        "from aiokafka import AIOKafkaProducer\n"
        "from confluent_kafka import Consumer\n"
        "def a(s):\n    return AIOKafkaProducer(bootstrap_servers=s)\n"
        "def b(s):\n    return Consumer({'bootstrap.servers': s})\n"
        "def c(s):\n    return Consumer({**kafka_clients.librdkafka_config(s, 'admin'), 'group.id': 'g'})\n"
    )
    assert direct_clients(planted) == ["line 4: AIOKafkaProducer(", "line 6: Consumer("]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KPSANDBOX_* variable of the calling shell leaks into the settings under test."""
    for name in list(os.environ):
        if name.startswith("KPSANDBOX_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    """A real PEM CA bundle (certifi's) at a path of the test's own."""
    path = tmp_path / "ca.pem"
    path.write_bytes(Path(certifi.where()).read_bytes())
    return path


def _external(cafile: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": EXTERNAL,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "team-a",
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_cafile": cafile,
    }
    return Settings(**(values | overrides))


def _local(state_dir: Path, *, ca: bool = True, principals: dict[str, str] | None = None) -> Settings:
    settings = Settings(kafka_security="sasl_ssl", state_dir=state_dir)
    if ca:
        kafka_clients.local_cafile(settings).parent.mkdir(parents=True)
        kafka_clients.local_cafile(settings).write_bytes(Path(certifi.where()).read_bytes())
    for principal, password in (principals or {}).items():
        kafka_clients.principals_dir(settings).mkdir(parents=True, exist_ok=True)
        (kafka_clients.principals_dir(settings) / principal).write_text(password + "\n")
    return settings


def test_plaintext_needs_no_options(clean_env: None, tmp_path: Path) -> None:
    """The default (PLAINTEXT, local or external) adds nothing to aiokafka's or librdkafka's config."""
    for settings in (Settings(state_dir=tmp_path), Settings(kafka_bootstrap_servers=EXTERNAL)):
        assert settings.kafka_protocol == "PLAINTEXT"
        assert kafka_clients.security_options(settings, "ledger") == {}
        assert kafka_clients.librdkafka_config(settings, "ledger") == {"bootstrap.servers": settings.bootstrap_servers}


def test_external_sasl_ssl_options(clean_env: None, cafile: Path) -> None:
    """External SASL_SSL: the settings' protocol, mechanism, user, the secret's value and a CA-loaded context."""
    settings = _external(cafile)
    options = kafka_clients.security_options(settings, "ledger")
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "team-a",  # the settings' user wins over the principal
        "sasl_plain_password": PASSWORD,
    }
    assert kafka_clients.librdkafka_config(settings, "researcher") == {
        "bootstrap.servers": EXTERNAL,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(cafile),
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "team-a",
        "sasl.password": PASSWORD,
    }


def test_external_ssl_without_a_ca_file_trusts_the_system(clean_env: None) -> None:
    """SSL without KPSANDBOX_KAFKA_SSL_CAFILE: a verifying context on the system store; librdkafka probes."""
    settings = Settings(kafka_bootstrap_servers=EXTERNAL, kafka_security_protocol="SSL")
    options = kafka_clients.security_options(settings, "api")
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kafka_clients.librdkafka_config(settings, "api")["ssl.ca.location"] == "probe"


def test_a_missing_ca_file_names_the_setting(clean_env: None, tmp_path: Path) -> None:
    """A CA path that is not there is refused when the settings load, naming the field."""
    with pytest.raises(ValidationError, match="kafka_ssl_cafile") as refused:
        _external(tmp_path / "nowhere.pem")
    assert "not a readable file" in str(refused.value)


def test_a_ca_file_that_is_not_pem_names_the_setting(clean_env: None, tmp_path: Path) -> None:
    """A CA file that exists but holds no certificate: SandboxError naming KPSANDBOX_KAFKA_SSL_CAFILE."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    settings = _external(junk)
    with pytest.raises(SandboxError, match="cannot load the Kafka CA file") as refused:
        kafka_clients.security_options(settings, "ledger")
    assert "KPSANDBOX_KAFKA_SSL_CAFILE" in refused.value.hint


@pytest.mark.parametrize("missing", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_credentials_names_the_setting(clean_env: None, cafile: Path, missing: str) -> None:
    """External SASL without mechanism, user or password: refused at load, naming the KPSANDBOX_* variable."""
    with pytest.raises(ValidationError, match=f"KPSANDBOX_{missing.upper()}") as refused:
        _external(cafile, **{missing: None})
    assert PASSWORD not in str(refused.value)  # the model-level error's input holds every setting


def test_local_sasl_ssl_logs_in_as_the_principal(clean_env: None, tmp_path: Path) -> None:
    """Secured local broker: each principal logs in as kp-<principal> with the password `up` wrote."""
    settings = _local(tmp_path, principals={"ledger": "ledger-pw", "api": "api-pw"})
    ledger = kafka_clients.security_options(settings, "ledger")
    assert isinstance(ledger.pop("ssl_context"), ssl.SSLContext)
    assert ledger == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kp-ledger",
        "sasl_plain_password": "ledger-pw",
    }
    api = kafka_clients.librdkafka_config(settings, "api")
    assert (api["sasl.username"], api["sasl.password"]) == ("kp-api", "api-pw")
    assert api["ssl.ca.location"] == str(kafka_clients.local_cafile(settings))


def test_local_sasl_ssl_without_credentials_says_run_up(clean_env: None, tmp_path: Path) -> None:
    """Secured local broker before `up` made the files: a SandboxError saying to run `up`."""
    for settings, missing in (
        (_local(tmp_path / "no-ca", ca=False), "CA certificate"),
        (_local(tmp_path / "no-principal", principals={"api": "api-pw"}), "credentials for kp-ledger"),
    ):
        with pytest.raises(SandboxError, match=missing) as refused:
            kafka_clients.security_options(settings, "ledger")
        assert "kpsandbox up" in refused.value.hint


def test_local_security_is_for_the_local_broker_only(clean_env: None) -> None:
    """KPSANDBOX_KAFKA_SECURITY with an external cluster is refused, pointing at the external settings."""
    with pytest.raises(ValidationError, match="KPSANDBOX_KAFKA_SECURITY_PROTOCOL"):
        Settings(kafka_security="sasl_ssl", kafka_bootstrap_servers=EXTERNAL)


async def test_the_password_is_never_shown(clean_env: None, cafile: Path, caplog: pytest.LogCaptureFixture) -> None:
    """repr/str of the settings and every line the factory logs leave the password out."""
    settings = _external(cafile)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert PASSWORD not in repr(settings.kafka_sasl_password)
    with caplog.at_level(logging.DEBUG):
        clients = [
            kafka_clients.producer(settings, "economy", acks="all"),
            kafka_clients.consumer(settings, "ledger", "some.topic", group_id="g"),
            kafka_clients.admin(settings),
        ]
        kafka_clients.librdkafka_config(settings, "researcher")
    for client in clients[:2]:
        await client.stop()  # never started: releases nothing but closes cleanly
    await clients[2].close()
    factory_lines = [record.getMessage() for record in caplog.records if record.name == kafka_clients.log.name]
    assert len(factory_lines) == 4 and all("team-a" in line for line in factory_lines)
    assert not [record for record in caplog.records if PASSWORD in record.getMessage()]


def test_settings_env_hands_the_password_to_a_child_process(clean_env: None, cafile: Path) -> None:
    """settings_env carries the secret's value, and a child process loads exactly that password."""
    settings = _external(cafile)
    env = settings_env(settings)
    assert env["KPSANDBOX_KAFKA_SASL_PASSWORD"] == PASSWORD
    check = (
        "import sys; from infra.settings import load_settings; s = load_settings(); "
        "sys.exit(0 if s.kafka_sasl_password.get_secret_value() == sys.argv[1] else 3)"
    )
    child = subprocess.run(
        [sys.executable, "-c", check, PASSWORD],
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    copied = with_overrides(settings, topic_prefix="other.")
    assert copied.kafka_sasl_password is not None
    assert copied.kafka_sasl_password.get_secret_value() == PASSWORD


async def test_every_client_refreshes_its_leaders_every_ten_seconds_unless_told_otherwise(
    clean_env: None, tmp_path: Path
) -> None:
    """aiokafka's default is 5 minutes, and it does not refresh when a leader is unreachable: a broker
    cut off the network stalled the ledger until then (docs/scaling.md). A caller's own value wins."""
    settings = Settings(state_dir=tmp_path)
    consumer = kafka_clients.consumer(settings, "ledger")
    producer = kafka_clients.producer(settings, "ledger")
    faster = kafka_clients.consumer(settings, "gateway", metadata_max_age_ms=3_000)
    assert consumer._client._metadata_max_age_ms == kafka_clients.METADATA_MAX_AGE_MS == 10_000
    assert producer.client._metadata_max_age_ms == 10_000
    assert faster._client._metadata_max_age_ms == 3_000
