"""`kpsandbox export`: labelled PaySim, AMLSim and Parquet datasets that DuckDB reads and that agree
with what the simulation meant."""

from __future__ import annotations

import errno
import hashlib
import json
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from infra.errors import SandboxError
from kpsandbox.commands.export import register
from producers.datasets import export as export_module
from producers.datasets.export import LAYOUTS, MANIFEST, export_dataset
from producers.datasets.labelled import LabelledRun
from producers.sim.calibration import Calibration, load_calibration
from producers.sim.economy import IntentLabels
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario

DAYS = 20  # the run: seed 7, 20 days, 2,000 citizens, 200 merchants (voids, refusals, all kinds)

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """Test root, so `export` stays a subcommand."""


def _config(days: int = DAYS, calibration: Calibration | None = None) -> SimulationConfig:
    return SimulationConfig(
        seed=7,
        days=days,
        citizens=2_000,
        merchants=200,
        scenario=load_scenario("digital-kp"),
        calibration=calibration or load_calibration(),
    )


def _sim(days: int = DAYS) -> Simulation:
    return Simulation(_config(days))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Simulation]]:
    """Each format exported once from its own run of the same seed."""
    runs = {}
    for fmt in LAYOUTS:
        sim = _sim()
        out = tmp_path_factory.mktemp(fmt)
        export_dataset(sim, fmt, out)
        runs[fmt] = (out, sim)
    return runs


def _query(sql: str) -> list[tuple]:
    return duckdb.connect().execute(sql).fetchall()


def _read(path: Path) -> str:
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv_auto"
    return f"{reader}('{path}')"


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_every_file_is_written_and_duckdb_reads_it(exported, fmt: str) -> None:
    """Every file of the format exists, DuckDB counts the rows the manifest states, no partial file is left."""
    out, _ = exported[fmt]
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], MANIFEST])
    for spec in LAYOUTS[fmt]:
        path = out / spec.name
        (count,) = _query(f"SELECT count(*) FROM {_read(path)}")[0]
        assert count == manifest["files"][spec.name]["rows"] > 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["files"][spec.name]["sha256"]


@pytest.mark.parametrize(
    ("fmt", "name"), [("paysim", "paysim.csv"), ("amlsim", "transactions.csv"), ("parquet", "requests.parquet")]
)
def test_labels_group_in_duckdb_and_agree_with_the_simulation(exported, fmt: str, name: str) -> None:
    """GROUP BY label works on every request file; unknown payees equal the simulation's own count."""
    out, sim = exported[fmt]
    by_label = dict(_query(f"SELECT label, count(*) FROM {_read(out / name)} GROUP BY label"))
    assert by_label["intended_unknown_payee"] == sim.stats.expected_account_not_found > 0
    # The stats also count a prepaid order that falls back to cash on delivery, which emits nothing.
    assert 0 < by_label["intended_insufficient_funds"] <= sim.stats.expected_exceeds_credits
    assert by_label["normal"] > 10 * sum(v for k, v in by_label.items() if k != "normal")


def test_insufficient_funds_means_the_payer_was_short(exported) -> None:
    """Every intended_insufficient_funds row had a short payer; no normal payment or cash-out did."""
    requests = _read(exported["parquet"][0] / "requests.parquet")
    short, labelled, covered = _query(
        f"""SELECT count(*) FILTER (label = 'intended_insufficient_funds' AND from_balance_before_paisa < amount_paisa),
                   count(*) FILTER (label = 'intended_insufficient_funds'),
                   count(*) FILTER (label = 'normal' AND from_balance_before_paisa < amount_paisa
                                    AND event_type IN ('payment.requested', 'cash.out'))
            FROM {requests}"""
    )[0]
    assert short == labelled > 0
    assert covered == 0


def _fates(cancel: float, abandon: float) -> Calibration:
    """Many prepaid orders: a `cancel` share cancelled, an `abandon` share left by the seller to expire."""
    cal = load_calibration()
    prepaid = {"holder": 0.9, "active": 0.9}
    behaviour = {
        **cal.behaviour,
        "order_cancel_share": cancel,
        "order_abandon_share": abandon,
        "prepaid_share_of_orders": prepaid,
    }
    return replace(cal, behaviour=behaviour)


def test_voids_timeouts_and_undecided_authorisations_line_up(tmp_path: Path) -> None:
    """Authorisations are labelled by their fate: posted (normal), voided, left to expire inside the
    run (intended_timeout: no post or void ever names it), or undecided when the run ends."""
    sim = Simulation(_config(calibration=_fates(cancel=0.3, abandon=0.3)))
    export_dataset(sim, "parquet", tmp_path)
    requests = _read(tmp_path / "requests.parquet")
    rows = Counter(_query(f"SELECT event_type, pending, label FROM {requests} WHERE event_type LIKE 'payment.%'"))
    voids = sim.stats.events_by_type["payment.void_requested"]
    posts = sim.stats.events_by_type["payment.post_requested"]
    undecided = rows[("payment.requested", True, "pending_at_end")]
    timeouts = rows[("payment.requested", True, "intended_timeout")]
    assert voids > 0 and posts > 0 and undecided > 0 and timeouts > 0
    assert rows[("payment.void_requested", False, "intended_void")] == voids
    assert rows[("payment.requested", True, "intended_void")] == voids
    assert rows[("payment.post_requested", False, "normal")] == posts
    assert rows[("payment.requested", True, "normal")] == posts
    assert sim.stats.events_by_type["order.paid"] == posts + voids + undecided + timeouts
    assert timeouts <= sim.stats.orders_abandoned <= timeouts + undecided  # the last week's expire after the run
    late = _query(f"SELECT min(occurred_at) FROM {requests} WHERE label = 'pending_at_end'")[0][0]
    assert late.date() >= date(2026, 1, DAYS - 7)  # decided 1-3 days later, or expiring 7 days later
    decided = _query(
        f"""SELECT count(*) FROM {requests} a JOIN {requests} d ON d.pending_id = a.event_id
            WHERE a.label = 'intended_timeout'"""
    )[0][0]
    assert decided == 0, "nobody posts or voids an abandoned authorisation"
    expires = _query(
        f"""SELECT max(occurred_at + to_seconds(timeout_seconds)) FROM {requests}
            WHERE label = 'intended_timeout'"""
    )[0][0]
    assert expires.date() < date(2026, 1, 1 + DAYS), "each expires (in the ledger) before the run ends"


@pytest.mark.parametrize("abandon", [0.0, 0.3])
def test_the_balance_view_ends_where_the_simulation_ends(abandon: float) -> None:
    """Replaying requests by label reproduces the simulation's own final balance of every citizen,
    also when many authorisations are abandoned and their money comes back a day after they expire."""
    sim = Simulation(_config(days=12, calibration=_fates(cancel=0.2, abandon=abandon)))
    run = LabelledRun(sim)
    for _ in run.batches():
        pass
    registry, citizens = sim.registry, sim.citizens
    assert len(citizens.holders) > 100
    assert (sim.stats.orders_abandoned > 0) == (abandon > 0)
    assert (run.label_counts["intended_timeout"] > 0) == (abandon > 0)
    assert (run.released > 0) == (abandon > 0)
    for i in citizens.holders:
        assert run.balances[registry.citizen_account(i)] == citizens.balance[i]


def test_the_label_hook_changes_no_event() -> None:
    """A run with labels on yields the same wire text as the default run (which keeps no labels)."""
    plain = _sim(days=8)
    labelled = _sim(days=8)
    labelled.economy.labels = IntentLabels(8)
    assert list(plain.lines()) == list(labelled.lines())
    assert plain.economy.labels is None
    assert labelled.economy.labels


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_the_same_seed_writes_byte_identical_files(exported, tmp_path: Path, fmt: str) -> None:
    """A second export of the same seed, scenario and sizes has the same bytes in every file."""
    first, _ = exported[fmt]
    export_dataset(_sim(), fmt, tmp_path)
    for path in first.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_no_personal_numbers_are_exported(exported) -> None:
    """No IBAN or Raast alias column or value appears in any file: accounts are tokens only."""
    out, _ = exported["amlsim"]
    text = (out / "accounts.csv").read_text() + (exported["paysim"][0] / "paysim.csv").read_text()
    assert "PK" not in text.replace("PKR", "")
    columns = {c[0] for c in _query(f"DESCRIBE SELECT * FROM {_read(exported['parquet'][0] / 'accounts.parquet')}")}
    assert "account_id" in columns and not columns & {"iban", "raast_alias"}


def _error(args: list[str]) -> SandboxError:
    result = CliRunner().invoke(app, ["export", *args])
    assert isinstance(result.exception, SandboxError), result.output
    return result.exception


def test_bad_input_is_a_two_line_error(tmp_path: Path) -> None:
    """An unknown format or scenario, or an --out that is a file, is refused with a message and a hint."""
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    cases = [
        (["--format", "csv", "--out", str(tmp_path / "d")], "unknown format"),
        (["--format", "parquet", "--out", str(a_file)], "is a file"),
        (["--format", "paysim", "--out", str(tmp_path / "d"), "--scenario", "nowhere"], "unknown scenario"),
        (["--format", "paysim", "--out", str(tmp_path / "d"), "--citizens", "0"], "--citizens"),
    ]
    for args, message in cases:
        error = _error(args)
        assert message in error.message and error.hint, args


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk mid-export is a SandboxError and the folder holds no partial or stale-looking file."""
    real_write = export_module._write
    calls = []

    def full_disk(*args: object) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(export_module, "ROWS_PER_BATCH", 500)
    monkeypatch.setattr(export_module, "_write", full_disk)
    with pytest.raises(SandboxError, match="No space left"):
        export_dataset(_sim(days=5), "parquet", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_command_shows_a_summary(tmp_path: Path) -> None:
    """`export` prints rows per file and requests per label after writing the files."""
    args = ["export", "--format", "amlsim", "--out", str(tmp_path), "--days", "5", "--citizens", "500"]
    result = CliRunner().invoke(app, [*args, "--merchants", "50"])
    assert result.exit_code == 0, result.output
    assert "transactions.csv" in result.output and "normal" in result.output
    assert (tmp_path / "transactions.csv").exists()
