"""The operator console's templates: every metric they name is in the catalogue or a recording rule,
every page is linked from the menu, and a Prometheus started by us serves them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from infra.local import procs
from infra.local.prometheus import CONSOLES_DIR, PrometheusService, console_flags
from infra.settings import Settings
from schemas.metrics import exposed_name_index
from tests.console_pages import PAGES, all_graphs, console_files, template_strings
from tests.integration.test_ledger_support import free_port

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "kpsandbox_rules.yml"
EXEC_WAIT_S = 10.0
_NAME = re.compile(r"\bkpsandbox[_:][A-Za-z0-9_:]*")


def _recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def _names(text: str) -> set[str]:
    return {name for name in _NAME.findall(text) if not name.endswith("_")}


def test_every_name_a_page_queries_is_in_the_catalogue_or_a_recording_rule() -> None:
    """A renamed metric or rule fails here, not as an empty graph in a browser."""
    known = set(exposed_name_index()) | _recorded()
    queries = [expr for graph in all_graphs() for expr in graph.exprs]
    queries += [text for path in console_files() for text in template_strings(path)]
    used = set().union(*(_names(q) for q in queries))
    assert used, "no metric name found: the page parser is broken"
    assert not used - known, sorted(used - known)


def test_each_page_has_graphs_with_unique_ids_and_is_in_the_menu() -> None:
    """Every page draws something, ids do not collide (the test reads graphs by id), the menu links all."""
    ids = [graph.id for graph in all_graphs()]
    assert len(ids) == len(set(ids)), ids
    assert {graph.page for graph in all_graphs()} == set(PAGES)
    assert sorted(p.name for p in CONSOLES_DIR.glob("*.html")) == sorted(PAGES)
    library = "".join(path.read_text() for path in console_files() if path.suffix == ".lib")
    assert all(f'"{page}"' in library for page in PAGES)


def _fake_prometheus(tmp_path: Path) -> Path:
    """A stand-in `prometheus` that sleeps with its arguments on the command line."""
    script = tmp_path / "prometheus"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    script.chmod(0o755)
    return script


def _wait_exec(pid: int, *words: str) -> None:
    """Until the process's command line holds every word: a child that has not exec'd the server yet
    still shows its parent's command line (bounded by EXEC_WAIT_S)."""
    deadline = time.monotonic() + EXEC_WAIT_S
    while not all(word in procs.pid_cmdline(pid) for word in words):
        assert time.monotonic() < deadline, f"{pid} never ran with {words}: {procs.pid_cmdline(pid)}"
        time.sleep(0.05)


def test_a_running_prometheus_without_the_console_flags_is_restarted_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` on an old state folder: our server started without the flags is replaced, and reported
    as already running (not as started, so a demo does not stop it afterwards)."""
    binary = _fake_prometheus(tmp_path)
    monkeypatch.setattr("infra.local.prometheus.shutil.which", lambda _: str(binary))
    service = PrometheusService(Settings(state_dir=tmp_path / "state", prometheus_port=free_port()))
    service.prepare()
    old = subprocess.Popen([str(binary), f"--config.file={service.config_file}"], start_new_session=True)
    service.pid_file.write_text(f"{old.pid}\n")
    try:
        _wait_exec(old.pid, str(service.config_file))  # until then its command line is still ours
        assert service.start() is False
        assert old.wait(timeout=15) is not None, "the old server was not stopped"
        new_pid = procs.read_pid(service.pid_file)
        assert new_pid is not None and new_pid != old.pid
        _wait_exec(new_pid, *console_flags())  # started with the console flags
        assert service.start() is False and procs.read_pid(service.pid_file) == new_pid, "restarted twice"
    finally:
        old.kill()
        service.stop()


def test_status_with_a_wrong_prometheus_url_is_a_two_line_error(tmp_path: Path) -> None:
    """Bad input: `kpsandbox status` against a Prometheus URL nobody answers names the variable to fix."""
    env = {
        "PATH": "/usr/bin:/bin",
        "KPSANDBOX_STATE_DIR": str(tmp_path),
        "KPSANDBOX_PROMETHEUS_URL": "http://127.0.0.1:1",
    }
    run = subprocess.run([sys.executable, "-m", "kpsandbox.cli", "status"], capture_output=True, text=True,
                         env=env, timeout=60, check=False)  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 2, run.stderr
    assert lines[0].startswith("error: prometheus at http://127.0.0.1:1 does not answer"), lines
    assert lines[1].startswith("what to do:") and "KPSANDBOX_PROMETHEUS_URL" in lines[1], lines
