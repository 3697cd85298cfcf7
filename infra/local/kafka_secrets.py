"""Secrets of the local secured broker: the principals' random passwords in 0600 files, the
java @argfile lines that keep them off command lines, and redaction of quoted tool output."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from infra.kafka_clients import PRINCIPALS, principals_dir, username
from infra.settings import Settings

PASSWORD_BYTES: Final = 24  # secrets.token_urlsafe: 32 characters of [A-Za-z0-9_-]
PRIVATE_MODE: Final = 0o600
PRIVATE_FOLDER_MODE: Final = 0o700
REDACTED: Final = "[redacted]"


def known_principal_passwords(settings: Settings) -> dict[str, str] | None:
    """The principals' passwords made when the first broker was formatted (a broker formatted
    later must get the same SCRAM users), or None if any file is missing."""
    folder = principals_dir(settings)
    try:
        return {username(principal): (folder / principal).read_text().strip() for principal in PRINCIPALS}
    except FileNotFoundError:
        return None


def redact(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every secret replaced by a marker, for errors that quote a tool's output."""
    for value in secret_values:
        if value:
            text = text.replace(value, REDACTED)
    return text


def new_principal_passwords(settings: Settings) -> dict[str, str]:
    """A fresh random password for every sandbox principal, each written to its own 0600 file
    first (the clients read them there); returns SCRAM user name → password."""
    folder = principals_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
    users: dict[str, str] = {}
    for principal in PRINCIPALS:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        write_private(folder / principal, password + "\n")
        users[username(principal)] = password
    return users


def write_private(path: Path, text: str) -> None:
    """Writes `text` to a file only this user can read (mode 0600 from its creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def java_arg_quoted(arg: str) -> str:
    """One argument as a `java @argfile` line: double-quoted, backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
