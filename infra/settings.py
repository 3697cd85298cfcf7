"""One settings object for the whole sandbox, read from `KPSANDBOX_*` environment variables.

Embedded mode (the default) runs Kafka, PostgreSQL and Prometheus locally on the ports below.
External mode: set `KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS` and/or `KPSANDBOX_DATABASE_URL` and the
sandbox starts nothing for that service and talks to yours instead.

What a well-formed value looks like (host lists, URLs, schedules) is in infra/setting_formats.py;
here are the settings, their defaults, and the checks that relate one setting to another.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra import setting_formats as formats
from infra.kafka_ports import (
    KAFKA_BROKERS_MAX,
    KAFKA_REPLICATION_FACTOR_DEFAULT_MAX,
    broker_hosts,
    broker_ports,
    kafka_port_clash,
    partitionable_problem,
)
from schemas.topics import TopicSpec

KAFKA_VERSION_DEFAULT: Final = "4.4.0"

Port = Annotated[int, Field(ge=1024, le=65535)]
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::"})
WEBHOOK_PROCESSES_MAX: Final = 8  # dispatcher processes; each has at least one of the 16 slots per endpoint


def _default_state_dir() -> Path:
    return Path.cwd() / ".kpsandbox"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "kpsandbox"


class Settings(BaseSettings):
    """Every knob of the sandbox. Each field maps to the env var `KPSANDBOX_<FIELD>`."""

    # Inputs stay out of str(ValidationError): a model-level error's input is every setting, the
    # SASL password included, and such errors end up in tracebacks and logs.
    model_config = SettingsConfigDict(env_prefix="KPSANDBOX_", frozen=True, extra="ignore", hide_input_in_errors=True)

    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where local services keep data, logs and PID files.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Where the Kafka jars from Maven Central are cached."
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="External Kafka, e.g. 'broker1:9092,broker2:9092'. Unset: run one locally."
    )
    database_url: str | None = Field(
        default=None, description="External PostgreSQL, e.g. 'postgresql://u:p@host:5432/db'. Unset: local."
    )
    prometheus_url: str | None = Field(
        default=None, description="External Prometheus, e.g. 'http://host:9090'. Unset: run one locally."
    )
    kafka_version: str = Field(default=KAFKA_VERSION_DEFAULT, pattern=r"^4\.[0-9]+\.[0-9]+$")
    kafka_port: Port = 19092
    kafka_controller_port: Port = 19093
    kafka_brokers: int = Field(
        default=1,
        description="Local Kafka brokers (1–5), each a KRaft broker and controller voter; 3 for a replicated "
        "cluster that survives losing one.",
    )
    kafka_partitionable_broker: int | None = Field(
        default=None,
        ge=1,
        le=KAFKA_BROKERS_MAX,
        description="Runs this local broker (1..KPSANDBOX_KAFKA_BROKERS) in its own network namespace behind a "
        "veth link that `kpsandbox partition cut` / `heal` take down and up: a real network partition (root only; "
        "plaintext only). The brokers then listen on 198.51.100.x, not 127.0.0.1.",
    )
    kafka_replication_factor: int | None = Field(
        default=None,
        ge=1,
        le=7,
        description="Replication factor of created topics. Unset: min(3, KPSANDBOX_KAFKA_BROKERS) locally, "
        "1 on an external cluster (raise it there).",
    )
    kafka_heap_mb: int | None = Field(
        default=None,
        ge=256,
        le=1024,
        description="Heap of each local Kafka broker. Unset: 768 MiB for one broker, 512 MiB each in a cluster.",
    )
    kafka_security: Literal["plaintext", "sasl_ssl"] = Field(
        default="plaintext",
        description="The local broker's client listener: plaintext, or sasl_ssl (SCRAM-SHA-512 over TLS, "
        "ACLs, one principal per sandbox process; a CA and broker certificate are made once).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = Field(
        default=None,
        description="How clients reach an external cluster. Unset: SASL_SSL when KPSANDBOX_KAFKA_SECURITY is "
        "sasl_ssl, else PLAINTEXT.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism for SASL_PLAINTEXT / SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(
        default=None, min_length=1, description="SASL user every client of this process logs in as."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (a secret: never printed or logged)."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    postgres_port: Port = 15432
    postgres_db: str = Field(default="kpsandbox", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    postgres_user: str = Field(default="kpsandbox", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    prometheus_port: Port = 19090
    metrics_port: Port = Field(default=9464, description="Port of the sandbox's own /metrics exporter.")
    ledger_metrics_port: Port = Field(default=9465, description="Port of the ledger's /metrics while it settles.")
    webhooks_metrics_port: Port = Field(
        default=9466, description="Port of the webhook dispatcher's /metrics (`python -m consumers.webhooks`)."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Bind host of the /metrics servers (metrics exporter, ledger, webhook dispatcher); "
        "0.0.0.0 for docker-compose.",
    )
    api_host: str = Field(
        default="127.0.0.1", description="Bind host of the HTTP API (`python -m producers.api`); 0.0.0.0 for all."
    )
    api_port: Port = Field(default=8080, description="Port of the HTTP API.")
    topic_prefix: str = Field(
        default="",
        pattern=r"^[a-z0-9._-]{0,32}$",
        description="Prepended to every topic name, to share one cluster between sandboxes or test runs.",
    )
    service_start_timeout_s: float = Field(default=60.0, gt=0, le=600)
    webhook_processes: int = Field(
        default=2,
        ge=1,
        le=WEBHOOK_PROCESSES_MAX,
        description="Most processes of the webhook dispatcher: `python -m consumers.webhooks` runs alone and "
        "starts the others as its children while a backlog lasts; they share its bounds and its /metrics port.",
    )
    webhook_retry_schedule: str = Field(
        default=formats.WEBHOOK_RETRY_SCHEDULE_DEFAULT,
        description="Seconds before each webhook retry, comma-separated; after the last, the delivery fails.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def check_bootstrap(cls, value: str | None) -> str | None:
        """Every entry must be host:port."""
        return None if value is None else formats.check_bootstrap_servers(value)

    @field_validator("kafka_brokers")
    @classmethod
    def check_kafka_brokers(cls, value: int) -> int:
        """1 to 5 local brokers."""
        if not 1 <= value <= KAFKA_BROKERS_MAX:
            raise ValueError(
                f"is the number of local Kafka brokers, 1 to {KAFKA_BROKERS_MAX} (3 for a replicated cluster)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def check_database_url(cls, value: str | None) -> str | None:
        """Must be a postgresql:// URL (setting_formats.check_database_url)."""
        return None if value is None else formats.check_database_url(value)

    @field_validator("ledger_metrics_port")
    @classmethod
    def check_ledger_metrics_port(cls, value: int, info: ValidationInfo) -> int:
        """Both exporters run on one host, so they cannot share a port."""
        if value == info.data.get("metrics_port"):
            raise ValueError(f"must differ from KPSANDBOX_METRICS_PORT ({value})")
        return value

    @field_validator("webhooks_metrics_port")
    @classmethod
    def check_webhooks_metrics_port(cls, value: int, info: ValidationInfo) -> int:
        """The dispatcher's exporter runs beside the other two, so it cannot share their ports."""
        for field in ("metrics_port", "ledger_metrics_port"):
            if value == info.data.get(field):
                raise ValueError(f"must differ from KPSANDBOX_{field.upper()} ({value})")
        return value

    @field_validator("api_port")
    @classmethod
    def check_api_port(cls, value: int, info: ValidationInfo) -> int:
        """The API runs on the same host as the exporters, so it cannot share their ports."""
        for field in ("metrics_port", "ledger_metrics_port", "webhooks_metrics_port"):
            if value == info.data.get(field):
                raise ValueError(f"must differ from KPSANDBOX_{field.upper()} ({value})")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def check_webhook_retry_schedule(cls, value: str) -> str:
        """Whole seconds, comma-separated, each 1 s to a day."""
        formats.parse_retry_schedule(value)
        return value

    @field_validator("metrics_host", "api_host")
    @classmethod
    def check_bind_host(cls, value: str) -> str:
        """An IP address or a host name, without port or scheme."""
        return formats.check_bind_host(value)

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def check_cafile(cls, value: Path | None) -> Path | None:
        """A CA file that is not there fails now, not at the first TLS handshake."""
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file (a PEM CA certificate)")
        return value

    @model_validator(mode="after")
    def check_kafka_security(self) -> Settings:
        """SASL needs a mechanism and credentials; local security applies only to the local broker."""
        if self.kafka_security != "plaintext" and not self.kafka_embedded:
            raise ValueError(
                "KPSANDBOX_KAFKA_SECURITY secures the local broker only; for an external cluster set "
                "KPSANDBOX_KAFKA_SECURITY_PROTOCOL and the KPSANDBOX_KAFKA_SASL_* settings instead"
            )
        if self.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL") and not self.kafka_embedded:
            missing = [
                f"KPSANDBOX_KAFKA_SASL_{name.upper()}"
                for name in ("mechanism", "username", "password")
                if getattr(self, f"kafka_sasl_{name}") is None
            ]
            if missing:
                raise ValueError(f"{self.kafka_security_protocol} needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def check_kafka_cluster(self) -> Settings:
        """A local cluster's ports are all distinct, and its topics fit on its brokers: refused here,
        before any broker starts or any topic is created."""
        if not self.kafka_embedded:
            return self
        replication = self.kafka_replication_factor
        if replication is not None and replication > self.kafka_brokers:
            raise ValueError(
                f"KPSANDBOX_KAFKA_REPLICATION_FACTOR={replication} is more than the {self.kafka_brokers} local "
                f"Kafka broker(s): set KPSANDBOX_KAFKA_BROKERS={replication} (at most {KAFKA_BROKERS_MAX}) or "
                "lower the replication factor (unset, it follows the broker count)"
            )
        problem = kafka_port_clash(self.kafka_port, self.kafka_controller_port, self.kafka_brokers)
        if problem is not None:
            raise ValueError(problem)
        isolated = self.kafka_partitionable_broker
        if isolated is not None and (
            problem := partitionable_problem(self.kafka_brokers, isolated, self.kafka_security)
        ):
            raise ValueError(problem)
        return self

    @property
    def kafka_client_ports(self) -> tuple[int, ...]:
        """The client port of each local broker, broker 1 first."""
        return broker_ports(self.kafka_port, self.kafka_brokers)

    @property
    def kafka_controller_ports(self) -> tuple[int, ...]:
        """The KRaft controller port of each local broker, broker 1 first."""
        return broker_ports(self.kafka_controller_port, self.kafka_brokers)

    @property
    def topic_replication_factor(self) -> int:
        """The replication factor of created topics: the setting, or min(3, brokers) on the local cluster."""
        if self.kafka_replication_factor is not None:
            return self.kafka_replication_factor
        return min(KAFKA_REPLICATION_FACTOR_DEFAULT_MAX, self.kafka_brokers) if self.kafka_embedded else 1

    @property
    def kafka_protocol(self) -> str:
        """The security protocol every Kafka client of this process uses."""
        if self.kafka_security_protocol is not None:
            return self.kafka_security_protocol
        return "SASL_SSL" if self.kafka_security == "sasl_ssl" else "PLAINTEXT"

    @property
    def kafka_embedded(self) -> bool:
        """True when the sandbox runs its own Kafka broker."""
        return self.kafka_bootstrap_servers is None

    @property
    def postgres_embedded(self) -> bool:
        """True when the sandbox runs its own PostgreSQL server."""
        return self.database_url is None

    @property
    def prometheus_embedded(self) -> bool:
        """True when the sandbox runs its own Prometheus server."""
        return self.prometheus_url is None

    @property
    def kafka_hosts(self) -> tuple[str, ...]:
        """The address each local broker listens on, broker 1 first (kafka_ports.broker_hosts)."""
        return broker_hosts(self.kafka_brokers, self.kafka_partitionable_broker)

    @cached_property
    def bootstrap_servers(self) -> str:
        """Where Kafka clients connect."""
        return self.kafka_bootstrap_servers or ",".join(
            f"{host}:{port}" for host, port in zip(self.kafka_hosts, self.kafka_client_ports, strict=True)
        )

    @cached_property
    def dsn(self) -> str:
        """Where asyncpg connects."""
        return self.database_url or (
            f"postgresql://{self.postgres_user}@127.0.0.1:{self.postgres_port}/{self.postgres_db}"
        )

    def topic(self, spec: TopicSpec) -> str:
        """The real name of a catalog topic in this deployment (prefix + catalog name)."""
        return self.topic_prefix + spec.name

    @cached_property
    def metrics_scrape_host(self) -> str:
        """Where a Prometheus on this machine reaches the exporters: the bind host, or loopback when
        they bind every interface (a wildcard is not an address one can connect to)."""
        if self.metrics_host in WILDCARD_HOSTS:
            return "127.0.0.1"
        return f"[{self.metrics_host}]" if ":" in self.metrics_host else self.metrics_host

    @cached_property
    def webhook_retry_delays_s(self) -> tuple[int, ...]:
        """The webhook retry schedule as seconds, one per retry."""
        return formats.parse_retry_schedule(self.webhook_retry_schedule)

    @cached_property
    def prometheus(self) -> str:
        """Base URL of the Prometheus HTTP API."""
        return self.prometheus_url or f"http://127.0.0.1:{self.prometheus_port}"


# Settings whose value is never shown (SecretStr fields): error messages name them without their value.
SECRET_SETTINGS: Final = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in repr(field.annotation)
)


def with_overrides(settings: Settings, **updates: object) -> Settings:
    """A copy of settings with some fields replaced (a fresh object: no stale cached properties)."""
    return Settings(**(settings.model_dump() | updates))


def settings_env(settings: Settings) -> dict[str, str]:
    """The KPSANDBOX_* environment that makes a child process load exactly these settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            env[f"KPSANDBOX_{name.upper()}"] = value.get_secret_value()
        elif value is not None:
            env[f"KPSANDBOX_{name.upper()}"] = str(value)
    return env


def load_settings() -> Settings:
    """Reads settings from the environment. Raises pydantic.ValidationError on a bad value."""
    return Settings()
