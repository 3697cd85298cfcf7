"""The deployment key file (infra/secrets.py): made once, private, reused, and refused when damaged."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from infra.errors import SandboxError
from infra.secrets import KEY_BYTES, deployment_key, deployment_key_path
from infra.settings import Settings

RACERS = 8


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_call_creates_a_private_32_byte_key(tmp_path: Path) -> None:
    """No state folder yet: a 32-byte key appears at secrets/token.key, file 0600, folder 0700."""
    settings = _settings(tmp_path)
    key = deployment_key(settings)
    path = deployment_key_path(settings)
    assert path == settings.state_dir / "secrets" / "token.key"
    assert len(key) == KEY_BYTES and path.read_bytes() == key
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["token.key"], "no draft file is left behind"


def test_a_permissive_umask_still_gives_private_modes(tmp_path: Path) -> None:
    """Even with umask 000 and an existing world-readable folder, the folder ends 0700 and the key 0600."""
    settings = _settings(tmp_path)
    folder = deployment_key_path(settings).parent
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    previous = os.umask(0)
    try:
        deployment_key(settings)
    finally:
        os.umask(previous)
    assert _mode(folder) == 0o700
    assert _mode(deployment_key_path(settings)) == 0o600


def test_the_key_is_reused_not_remade(tmp_path: Path) -> None:
    """A second call (a later `up`) returns the same bytes and leaves the file untouched."""
    settings = _settings(tmp_path)
    first = deployment_key(settings)
    written = deployment_key_path(settings).stat().st_mtime_ns
    assert deployment_key(settings) == first
    assert deployment_key_path(settings).stat().st_mtime_ns == written


def test_two_state_folders_get_two_keys(tmp_path: Path) -> None:
    """Keys are random per deployment, not derived from anything shared."""
    assert deployment_key(Settings(state_dir=tmp_path / "a")) != deployment_key(Settings(state_dir=tmp_path / "b"))


def _race(state_dir: str, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue[bytes]) -> None:
    start.wait()
    results.put(deployment_key(Settings(state_dir=Path(state_dir))))


def test_processes_racing_on_a_fresh_folder_agree_on_one_key(tmp_path: Path) -> None:
    """Eight processes asking at the same moment all get the one key that ends up on disk."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    results: multiprocessing.Queue[bytes] = context.Queue()
    state_dir = tmp_path / "state"
    racers = [context.Process(target=_race, args=(str(state_dir), start, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    start.set()
    keys = {results.get(timeout=30) for _ in racers}
    for racer in racers:
        racer.join(timeout=30)
        assert racer.exitcode == 0
    assert keys == {deployment_key(Settings(state_dir=state_dir))}
    assert sorted(p.name for p in (state_dir / "secrets").iterdir()) == ["token.key"]


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_file_of_the_wrong_size_is_refused_and_kept(tmp_path: Path, size: int) -> None:
    """A truncated or padded key file is a SandboxError with a hint; the file is not replaced."""
    settings = _settings(tmp_path)
    path = deployment_key_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"k" * size)
    with pytest.raises(SandboxError) as refused:
        deployment_key(settings)
    assert f"holds {size} bytes, not 32" in refused.value.message
    assert str(path) in refused.value.message
    assert "restore" in refused.value.hint and "delete" in refused.value.hint
    assert path.read_bytes() == b"k" * size


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of its mode")
def test_an_unreadable_key_file_is_a_sandbox_error(tmp_path: Path) -> None:
    """A key file this user cannot read is a two-line error, not a traceback or a new key."""
    settings = _settings(tmp_path)
    key = deployment_key(settings)
    path = deployment_key_path(settings)
    path.chmod(0o000)
    try:
        with pytest.raises(SandboxError, match="cannot be read"):
            deployment_key(settings)
    finally:
        path.chmod(0o600)
    assert path.read_bytes() == key


def test_an_unwritable_state_folder_is_a_sandbox_error(tmp_path: Path) -> None:
    """A state folder that cannot hold a secrets folder is a SandboxError naming what to fix."""
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be")
    with pytest.raises(SandboxError, match="could not be created") as refused:
        deployment_key(Settings(state_dir=blocker))
    assert "KPSANDBOX_STATE_DIR" in refused.value.hint


def test_a_folder_in_place_of_the_key_file_is_a_sandbox_error(tmp_path: Path) -> None:
    """token.key being a folder is reported as unreadable, and no key is made beside it."""
    settings = _settings(tmp_path)
    deployment_key_path(settings).mkdir(parents=True)
    with pytest.raises(SandboxError, match="cannot be read"):
        deployment_key(settings)
    assert deployment_key_path(settings).is_dir()
