"""The one factory for every Kafka client in the project: producers, consumers, admin, FastStream.

Every client gets the same security from the settings, so a process that reaches a plaintext
broker reaches a SASL_SSL cluster by changing settings only:

- External cluster: `KPSANDBOX_KAFKA_SECURITY_PROTOCOL`, `KPSANDBOX_KAFKA_SASL_MECHANISM`,
  `KPSANDBOX_KAFKA_SASL_USERNAME`, `KPSANDBOX_KAFKA_SASL_PASSWORD`, `KPSANDBOX_KAFKA_SSL_CAFILE`;
  every client of the process logs in as that one user.
- Local broker with `KPSANDBOX_KAFKA_SECURITY=sasl_ssl`: each sandbox process logs in as its own
  principal (`kp-ledger`, `kp-api`, …) with the password `kpsandbox up` wrote for it under the state
  folder, and trusts the local CA made there. An explicit username in the settings wins (a tenant).

No module builds an aiokafka client any other way (a unit test checks). The archive's librdkafka
(confluent-kafka) clients take the same security as a config dict from `librdkafka_config`.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Final, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from infra.errors import SandboxError
from infra.settings import Settings

# The sandbox's own processes, each its own principal on a secured local broker.
Principal = Literal["admin", "ledger", "metrics", "views", "api", "webhooks", "economy", "researcher", "gateway"]
PRINCIPALS: Final[tuple[Principal, ...]] = (
    "admin",
    "ledger",
    "metrics",
    "views",
    "api",
    "webhooks",
    "economy",
    "researcher",
    "gateway",  # copies each tenant's own requests onto the requests topic, stamped with the tenant
)
LOCAL_MECHANISM: Final = "SCRAM-SHA-512"
USERNAME_PREFIX: Final = "kp-"

log = logging.getLogger(__name__)


def tls_dir(settings: Settings) -> Path:
    """Where the local broker's CA, certificate and key live."""
    return settings.state_dir / "kafka" / "tls"


def local_cafile(settings: Settings) -> Path:
    """The local CA certificate (PEM) every client of a secured local broker trusts."""
    return tls_dir(settings) / "ca.pem"


def principals_dir(settings: Settings) -> Path:
    """Where `kpsandbox up` keeps each local principal's password (one file each, mode 0600)."""
    return settings.state_dir / "kafka" / "principals"


def username(principal: Principal) -> str:
    """The SCRAM user name of a sandbox principal on the local broker."""
    return USERNAME_PREFIX + principal


def _local_password(settings: Settings, principal: Principal) -> str:
    path = principals_dir(settings) / principal
    try:
        return path.read_text().strip()
    except OSError:
        raise SandboxError(
            f"the secured local broker has no credentials for {username(principal)} ({path} is missing)",
            "run `KPSANDBOX_KAFKA_SECURITY=sasl_ssl kpsandbox up` first (it makes the CA and the principals)",
        ) from None


def _ssl_context(cafile: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    except (OSError, ssl.SSLError) as error:
        raise SandboxError(
            f"cannot load the Kafka CA file {cafile}: {error}",
            "point KPSANDBOX_KAFKA_SSL_CAFILE at the PEM certificate of the CA that signed the brokers",
        ) from None


def _local_secured(settings: Settings) -> bool:
    return settings.kafka_embedded and settings.kafka_security == "sasl_ssl"


def _cafile(settings: Settings) -> Path | None:
    """The CA to trust: the setting, else the local CA on a secured local broker, else the system's."""
    if settings.kafka_ssl_cafile is not None or not _local_secured(settings):
        return settings.kafka_ssl_cafile
    path = local_cafile(settings)
    if not path.is_file():
        raise SandboxError(
            f"the secured local broker has no CA certificate ({path} is missing)",
            "run `KPSANDBOX_KAFKA_SECURITY=sasl_ssl kpsandbox up` first (it makes the CA and the principals)",
        )
    return path


def security_options(settings: Settings, principal: Principal) -> dict[str, Any]:
    """The aiokafka keyword arguments that secure one client (empty for PLAINTEXT)."""
    protocol = settings.kafka_protocol
    if protocol == "PLAINTEXT":
        return {}
    local = _local_secured(settings)
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(_cafile(settings))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if settings.kafka_sasl_username is not None and settings.kafka_sasl_password is not None:
            user, password = settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()
        elif local:
            user, password = username(principal), _local_password(settings, principal)
        else:
            raise SandboxError(
                f"{protocol} needs a user and password",
                "set KPSANDBOX_KAFKA_SASL_USERNAME and KPSANDBOX_KAFKA_SASL_PASSWORD",
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or LOCAL_MECHANISM
        options["sasl_plain_username"] = user
        options["sasl_plain_password"] = password
    return options


def librdkafka_config(settings: Settings, principal: Principal) -> dict[str, str | int | float | bool]:
    """The same security as `security_options`, as librdkafka (confluent-kafka) config keys.

    Includes `bootstrap.servers`; the caller adds its own keys (group.id, isolation.level, …).
    """
    options = security_options(settings, principal)  # also fails early on a CA file that is not PEM
    _described("librdkafka", settings, principal, options)
    config: dict[str, str | int | float | bool] = {"bootstrap.servers": settings.bootstrap_servers}
    if not options:
        return config
    config["security.protocol"] = options["security_protocol"]
    if "ssl_context" in options:
        cafile = _cafile(settings)  # librdkafka's own OpenSSL may not know the system store: probe for it
        config["ssl.ca.location"] = str(cafile) if cafile is not None else "probe"
    if "sasl_mechanism" in options:
        config["sasl.mechanism"] = options["sasl_mechanism"]
        config["sasl.username"] = options["sasl_plain_username"]
        config["sasl.password"] = options["sasl_plain_password"]
    return config


def _described(kind: str, settings: Settings, principal: Principal, options: dict[str, Any]) -> None:
    """One debug line per client: who it logs in as and how (never the password)."""
    log.debug(
        "Kafka %s client for %s at %s: %s as %s",
        kind,
        principal,
        settings.bootstrap_servers,
        settings.kafka_protocol,
        options.get("sasl_plain_username", "-"),
    )


# How old aiokafka lets its view of the partitions' leaders get (its default: 5 minutes). aiokafka
# refreshes it after a "not leader" answer, but not when the leader cannot be reached at all: a
# broker cut off the network (not dead: nothing refuses) kept the ledger's offset lookups going to it
# until they timed out, again and again, long after the controller had moved its leaderships
# (tests/integration/test_cluster_partition.py). One metadata request per client every 10 s instead.
METADATA_MAX_AGE_MS: Final = 10_000


def _secured(kind: str, settings: Settings, principal: Principal, options: dict[str, Any]) -> dict[str, Any]:
    """Every aiokafka client's options: bootstrap, security, the metadata age, then the caller's."""
    secured = security_options(settings, principal)
    _described(kind, settings, principal, secured)
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        **secured,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        **options,
    }


def producer(settings: Settings, principal: Principal, **options: Any) -> AIOKafkaProducer:
    """A producer for `principal`; options are aiokafka's (acks, linger_ms, transactional_id, …)."""
    return AIOKafkaProducer(**_secured("producer", settings, principal, options))


def consumer(settings: Settings, principal: Principal, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer for `principal`, subscribed to `topics` if any; options are aiokafka's."""
    return AIOKafkaConsumer(*topics, **_secured("consumer", settings, principal, options))


def admin(settings: Settings, principal: Principal = "admin", **options: Any) -> AIOKafkaAdminClient:
    """An admin client; on a secured local broker only `admin` may create topics and ACLs."""
    return AIOKafkaAdminClient(**_secured("admin", settings, principal, options))


LIBRDKAFKA_REPEAT_AFTER_S: Final = 60.0  # a line said again within this long is not shown again
LIBRDKAFKA_LINES_MAX: Final = 256  # distinct lines remembered (then the memory starts afresh)
# What changes between two tellings of the same failure: "(after 0ms in state CONNECT)", "1ms", and
# librdkafka's own "3 identical error(s) suppressed".
_TIMINGS: Final = re.compile(r"\d+ms\b|, \d+ identical error\(s\) suppressed")


class _OncePerWhile(logging.Filter):
    """Shows a log line once per LIBRDKAFKA_REPEAT_AFTER_S: librdkafka retries a refused
    connection every few hundred milliseconds and logs each attempt the same way, so a command
    printed a page of identical lines before saying, once, what to do."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, float] = {}  # line -> when it was last shown (time.monotonic)
        self._lock = threading.Lock()  # librdkafka logs from its own threads

    def filter(self, record: logging.LogRecord) -> bool:
        line, now = _TIMINGS.sub("", record.getMessage()), time.monotonic()
        with self._lock:
            shown = self._shown.get(line)
            if shown is not None and now - shown < LIBRDKAFKA_REPEAT_AFTER_S:
                return False
            if len(self._shown) >= LIBRDKAFKA_LINES_MAX:
                self._shown.clear()
            self._shown[line] = now
        return True


def librdkafka_logger(name: str) -> logging.Logger:
    """The logger to give librdkafka clients (confluent-kafka's `logger` key): repeated lines are
    shown once a minute."""
    logger = logging.getLogger(name)
    if not any(isinstance(found, _OncePerWhile) for found in logger.filters):
        logger.addFilter(_OncePerWhile())
    return logger
