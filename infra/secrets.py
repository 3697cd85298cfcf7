"""The deployment's secret key: what the API's privacy tokens are keyed with (issue 9, item 8).

One 32-byte random key per sandbox, kept in `<state_dir>/secrets/token.key` (file mode 0600,
folder 0700) and made the first time it is asked for. Every token of a phone number or CNIC
(producers/api/privacy.py) depends on it: losing or replacing the file means the same number
gets a different token afterwards, so stored aliases and holders no longer match.

Creation is atomic and exclusive. The key is written and flushed to a private temporary file,
which is then hard-linked to the final name; `link` fails when the name exists, like `O_EXCL`,
so when two processes start at once one key wins and the other process reads it, and nobody
ever reads a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.settings import Settings

KEY_BYTES: Final = 32
SECRETS_FOLDER: Final = "secrets"
KEY_FILE: Final = "token.key"
FOLDER_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def deployment_key_path(settings: Settings) -> Path:
    """Where the deployment key lives."""
    return settings.state_dir / SECRETS_FOLDER / KEY_FILE


def deployment_key(settings: Settings) -> bytes:
    """The deployment's 32-byte key, created on first use. A key file that cannot be read or holds
    anything but 32 bytes is a SandboxError: a silently replaced key would break every token."""
    path = deployment_key_path(settings)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        _create_key(path)
    except OSError as error:
        raise SandboxError(
            f"the deployment key {path} could not be created: {error.strerror or error}",
            f"make {path.parent.parent} writable by this user, or point KPSANDBOX_STATE_DIR elsewhere",
        ) from error
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    """The key at path; FileNotFoundError when there is none yet (or a file blocks its folder, which
    creating the key then reports)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise
    except NotADirectoryError as error:
        raise FileNotFoundError(path) from error
    except OSError as error:
        raise SandboxError(
            f"the deployment key {path} cannot be read: {error.strerror or error}",
            f"make it readable by this user (chmod 600 {path}) or run as the user who created it",
        ) from error
    if len(key) != KEY_BYTES:
        raise SandboxError(
            f"the deployment key {path} holds {len(key)} bytes, not {KEY_BYTES}",
            "restore the file from a backup; or delete it to make a new key at the next start, "
            "after which stored phone-number and CNIC tokens no longer match",
        )
    return key


def _create_key(path: Path) -> None:
    """Writes a new key to path unless one appeared there meanwhile (then leaves that one alone)."""
    folder = path.parent
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    folder.chmod(FOLDER_MODE)  # mkdir's mode is masked by the umask and ignored for an existing folder
    draft = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(draft, FILE_MODE)  # the umask may have taken bits away; never added any
        with contextlib.suppress(FileExistsError):  # another process won: its key is the key
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Makes the new directory entry durable (a power cut must not lose a key tokens depend on)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
