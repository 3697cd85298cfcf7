"""What a well-formed value of a setting looks like: pure checks and parsers, no I/O but a file's existence.

Each check returns the value or raises ValueError with a message that completes "KPSANDBOX_X …" and
shows a good example; `infra/settings.py` runs them as its field validators.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

# A DNS name (RFC 1123 labels); IP literals are checked with the ipaddress module instead.
HOSTNAME: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# libpq's sslmode values, which asyncpg reads from the URL (with sslrootcert=, sslcert=, sslkey=).
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
WEBHOOK_RETRY_SCHEDULE_DEFAULT: Final = "5,30,120,600,1800"  # six attempts within 45 minutes
WEBHOOK_RETRIES_MAX: Final = 16  # retries after the first attempt; the delivery then fails
WEBHOOK_RETRY_DELAY_S_MAX: Final = 86_400


def parse_retry_schedule(value: str) -> tuple[int, ...]:
    """The webhook retry delays of `KPSANDBOX_WEBHOOK_RETRY_SCHEDULE` ('5,30,120'): whole seconds
    after each failed attempt; a ValueError naming the expected form otherwise."""
    parts = [part.strip() for part in value.split(",")]
    if not 1 <= len(parts) <= WEBHOOK_RETRIES_MAX or not all(part.isdigit() for part in parts):
        raise ValueError(
            f"is 1 to {WEBHOOK_RETRIES_MAX} whole numbers of seconds, comma-separated"
            f" (e.g. '{WEBHOOK_RETRY_SCHEDULE_DEFAULT}')"
        )
    delays = tuple(int(part) for part in parts)
    if not all(1 <= delay <= WEBHOOK_RETRY_DELAY_S_MAX for delay in delays):
        raise ValueError(f"has a delay outside 1–{WEBHOOK_RETRY_DELAY_S_MAX} seconds: {value!r}")
    return delays


def check_bootstrap_servers(value: str) -> str:
    """Every entry must be host:port."""
    for entry in value.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"'{entry}' is not host:port (e.g. 'localhost:9092')")
    return value


def check_database_url(value: str) -> str:
    """A postgresql:// URL; its TLS query parameters name a known sslmode and files that exist."""
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must start with 'postgresql://' (e.g. 'postgresql://user:pw@host:5432/db')")
    query = parse_qs(urlsplit(value).query)
    for mode in query.get("sslmode", []):
        if mode not in SSL_MODES:
            raise ValueError(f"sslmode={mode} is not one of {', '.join(SSL_MODES)}")
    for name in ("sslrootcert", "sslcert", "sslkey"):
        for path in query.get(name, []):
            if not Path(path).expanduser().is_file():
                raise ValueError(f"{name}={path} is not a readable file (the PEM file PostgreSQL's TLS needs)")
    return value


def check_bind_host(value: str) -> str:
    """An IP address or a host name, without port or scheme."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOSTNAME.match(value):
            raise ValueError("is not an IP address or host name (e.g. '127.0.0.1' or '0.0.0.0')") from None
    return value
