"""The per-day panel: its columns and invariants, the aggregate-only run, `simulate --panel`."""

from __future__ import annotations

from array import array
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from infra.errors import SandboxError
from kpsandbox.commands.simulate import register
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.panel import PANEL_COLUMNS, PANEL_SCHEMA, panel_table, write_panel
from producers.sim.scenario import load_scenario
from producers.sim.stats import RunStats

DAYS = 40

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """Test root, so `simulate` stays a subcommand."""


def _config(seed: int = 7) -> SimulationConfig:
    return SimulationConfig(seed=seed, days=DAYS, citizens=300, merchants=30, scenario=load_scenario("digital-kp"))


@pytest.fixture(scope="module")
def full_run() -> Simulation:
    sim = Simulation(_config())
    for _ in sim.batches():
        pass
    return sim


def test_panel_has_one_row_per_day_district_and_gender(full_run: Simulation) -> None:
    """The panel holds exactly days × districts × 2 rows, with the documented schema."""
    table = panel_table(full_run.stats.panel, "digital-kp", 7)
    assert table.schema == PANEL_SCHEMA
    assert [name for name, _, _ in PANEL_COLUMNS] == table.column_names
    districts = len(full_run.stats.districts)
    assert table.num_rows == DAYS * districts * 2
    keys = set(zip(table["day"].to_pylist(), table["district"].to_pylist(), table["gender"].to_pylist(), strict=True))
    assert len(keys) == table.num_rows
    assert set(table["gender"].to_pylist()) == {"female", "male"}
    assert table["date"][0].as_py() == date(2026, 1, 1)


def test_panel_invariants_hold_on_every_row(full_run: Simulation) -> None:
    """Holders ≤ adults, active payers ≤ holders, shares in 0–1, merchants with digital ≤ merchants."""
    rows = panel_table(full_run.stats.panel, "digital-kp", 7).to_pylist()
    for row in rows:
        assert 0 <= row["account_holders"] <= row["adults"]
        assert 0 <= row["active_digital_payers_30d"] <= row["account_holders"]
        assert 0 <= row["district_merchants_digital"] <= row["district_merchants"]
        for key in ("digital_share_count", "digital_share_value"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0
    assert sum(r["adults"] for r in rows if r["day"] == 0) == 300
    assert any(r["active_digital_payers_30d"] > 0 for r in rows)


def test_panel_sums_match_the_day_aggregates(full_run: Simulation) -> None:
    """Per-day sums over the panel's cells equal the run's DayStats (same ground truth)."""
    rows = panel_table(full_run.stats.panel, "digital-kp", 7).to_pylist()
    for index, day in enumerate(full_run.days):
        cells = [r for r in rows if r["day"] == index]
        assert sum(r["digital_count"] for r in cells) == day.digital_count
        assert sum(r["cash_value_paisa"] for r in cells) == day.cash_value_paisa
        holders = sum(r["account_holders"] for r in cells)
        assert holders / 300 == pytest.approx(day.inclusion_by_gender["all"])


def test_aggregate_only_run_equals_the_full_run(full_run: Simulation) -> None:
    """Simulation(emit_events=False).run_aggregates() gives the same days, counts and panel."""
    quick = Simulation(_config(), emit_events=False)
    quick.run_aggregates()
    assert quick.days == full_run.days
    assert quick.stats.events_by_type == full_run.stats.events_by_type
    assert quick.stats.panel.columns == full_run.stats.panel.columns


def test_aggregate_only_simulation_refuses_to_stream_events() -> None:
    """A run without events cannot be asked for its (constant-id) events by mistake."""
    with pytest.raises(RuntimeError, match="run_aggregates"):
        next(Simulation(_config(), emit_events=False).batches())


def test_written_panel_reads_back_in_duckdb(full_run: Simulation, tmp_path: Path) -> None:
    """write_panel leaves one zstd Parquet file (no temporary) that DuckDB can aggregate."""
    path = write_panel(panel_table(full_run.stats.panel, "digital-kp", 7), tmp_path / "p.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    adults = duckdb.connect().execute(f"select sum(adults) from '{path}' where day = 0").fetchone()
    assert adults == (300,)


def test_simulate_panel_alone_writes_only_the_panel(tmp_path: Path) -> None:
    """`simulate --panel` without --out or --to-kafka writes the panel and no events."""
    path = tmp_path / "panel.parquet"
    args = ["simulate", "--days", "3", "--citizens", "200", "--merchants", "20", "--panel", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["panel.parquet"]
    assert pq.read_table(path).num_rows == 3 * 2 * len(Simulation(_config()).stats.districts)


def test_simulate_panel_with_out_writes_both(tmp_path: Path) -> None:
    """`simulate --out F --panel P` writes the events and the panel."""
    panel, events = tmp_path / "panel.parquet", tmp_path / "events.jsonl"
    args = ["simulate", "--days", "2", "--citizens", "200", "--merchants", "20", "--out", str(events)]
    result = CliRunner().invoke(app, [*args, "--panel", str(panel)])
    assert result.exit_code == 0, result.output
    assert events.stat().st_size > 0
    assert pq.read_table(panel)["seed"][0].as_py() == 42


def test_simulate_panel_must_be_parquet(tmp_path: Path) -> None:
    """--panel needs a .parquet path: a two-line error, nothing written."""
    result = CliRunner().invoke(app, ["simulate", "--days", "2", "--panel", str(tmp_path / "x.csv")])
    assert isinstance(result.exception, SandboxError)
    assert "--panel" in result.exception.message
    assert list(tmp_path.iterdir()) == []


class _People:
    """Just what RunStats.close_day reads of a population: stages and a length."""

    def __init__(self, stages: list[int]) -> None:
        self.stage = array("B", stages)

    def __len__(self) -> int:
        return len(self.stage)


def test_active_payers_count_the_last_30_days_exactly() -> None:
    """A payer counts as active on the day paid and the 29 after, once however often they pay."""
    stats = RunStats(("A",))
    stats.bind_cells(array("H", [0, 0, 1]))  # citizens 0 and 1 are district A's men, 2 its woman
    people, shops = _People([1, 1, 1]), SimpleNamespace(district=array("B", [0]), has_account=array("B", [1]))
    paid_on = {0: [0, 0, 2], 10: [1], 29: [0], 45: [2]}
    for day in range(80):
        for citizen in paid_on.get(day, []):
            stats.digital("p2p", citizen, 100)
        stats.close_day((date(2026, 1, 1) + timedelta(days=day)).isoformat(), people, shops)  # type: ignore[arg-type]
    rows = stats.panel.columns
    active = {(d, g): a for d, g, a in zip(rows["day"], rows["gender"], rows["active_digital_payers_30d"], strict=True)}
    men = [active[day, "male"] for day in range(80)]
    women = [active[day, "female"] for day in range(80)]
    assert men[0] == 1 and men[9] == 1 and men[10] == 2 and men[39] == 2  # day 10's payer: days 10..39
    assert men[40] == 1 and men[58] == 1 and men[59] == 0  # citizen 0 paid again on day 29: until day 58
    assert women[:30] == [1] * 30 and women[30:45] == [0] * 15 and women[45:75] == [1] * 30 and women[75] == 0
    assert stats.digital_count == 6 and rows["digital_count"][0] == 2  # two payments by men on day 0


def test_the_documented_panel_columns_are_the_written_ones() -> None:
    """docs/studies.md's column table names every panel column with its Arrow type, in order; the
    contract's type names (producers/sim/panel_rows.py) are what the Parquet schema is built from."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    table = doc.split("| column | type | meaning |", 1)[1].split("\n\n", 1)[0]  # the panel's table only
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    documented = [(name.strip().strip("`"), kind.strip()) for name, kind in rows]
    arrow_names = {"date32[day]": "date32", "double": "float64"}  # how Arrow prints two of the types
    written = [(f.name, arrow_names.get(str(f.type), str(f.type))) for f in PANEL_SCHEMA]
    assert documented == written
    assert [(name, kind) for name, kind, _ in PANEL_COLUMNS] == documented
