"""`kpsandbox study`: runs, panels, summary.json, charts, determinism and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from infra.errors import SandboxError
from kpsandbox.commands.study import register
from producers.sim.scenario import load_scenario
from producers.sim.study import RunResult, Variant, plan_runs, run_one, with_lever
from producers.sim.study_summary import final_share, ratio_gap, summarise, summary_markdown, years_to

DAYS = 60
SIZES = ["--days", str(DAYS), "--seeds", "2", "--citizens", "300", "--merchants", "30"]
RESULT_KEYS = {
    "group",
    "scenario",
    "variant",
    "seeds",
    "inclusion_start",
    "inclusion_final",
    "inclusion_final_spread",
    "inclusion_female_final",
    "inclusion_male_final",
    "years_to_50pct",
    "years_to_50pct_by_seed",
    "gender_gap_start",
    "gender_gap_final",
    "gender_gap_final_spread",
    "gender_ratio_gap_start",
    "gender_ratio_gap_final",
    "gender_ratio_gap_final_spread",
    "digital_share_count_final",
    "digital_share_count_final_spread",
    "digital_share_value_final",
    "digital_share_value_final_spread",
}

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """Test root, so `study` stays a subcommand."""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    result = CliRunner().invoke(app, ["study", "--scenarios", "baseline,digital-kp", *SIZES, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _plan() -> list:
    return plan_runs(["baseline", "digital-kp"], seeds=2, first_seed=1, days=DAYS, citizens=300, merchants=30)


def test_study_writes_summary_panels_and_charts(study_dir: Path) -> None:
    """summary.json has the documented keys per scenario, one panel per run, three charts, summary.md."""
    summary = json.loads((study_dir / "summary.json").read_text())
    assert [r["group"] for r in summary["results"]] == ["baseline", "digital-kp"]
    for entry in summary["results"]:
        assert set(entry) >= RESULT_KEYS
        assert 0.0 <= entry["inclusion_final"] <= 1.0
        spread = entry["inclusion_final_spread"]
        assert spread["min"] <= entry["inclusion_final"] <= spread["max"]
        assert 0.0 <= entry["digital_share_count_final"] <= 1.0
        assert entry["seeds"] == [1, 2]
    panels = sorted(p.name for p in (study_dir / "panels").iterdir())
    assert panels == [f"{s}__seed{k}.parquet" for s in ("baseline", "digital-kp") for k in (1, 2)]
    assert [r["panel"] for r in summary["runs"]] == [f"panels/{name}" for name in panels]
    for chart in ("inclusion.png", "gender_gap.png", "digital_share.png"):
        assert (study_dir / chart).read_bytes()[:4] == b"\x89PNG"
    assert "| digital-kp |" in (study_dir / "summary.md").read_text()
    assert pq.read_table(study_dir / "panels" / panels[0])["day"].to_pylist()[-1] == DAYS - 1


def test_same_seeds_give_the_same_summary(study_dir: Path) -> None:
    """The runs redone in this process (not in workers) give summary.json byte for byte."""
    runs = _plan()
    results = [run_one(spec, study_dir / "again") for spec in runs]
    assert all(isinstance(r, RunResult) for r in results)
    again = json.dumps(summarise(results, runs, None), indent=2) + "\n"  # type: ignore[arg-type]
    assert again == (study_dir / "summary.json").read_text()


def test_a_study_folder_is_not_overwritten(study_dir: Path) -> None:
    """A second study into a folder holding summary.json is refused before any run."""
    result = CliRunner().invoke(app, ["study", "--scenarios", "baseline", *SIZES, "--out", str(study_dir)])
    assert isinstance(result.exception, SandboxError)
    assert "already holds a study" in result.exception.message


def test_vary_makes_one_group_per_value(tmp_path: Path) -> None:
    """--vary levers.women_onboarding=1,3 plans 2 values × seeds and names each panel after its value."""
    runs = plan_runs(
        ["digital-kp"], seeds=1, first_seed=4, days=5, citizens=200, merchants=20, vary="levers.women_onboarding=1,3"
    )
    assert [r.group for r in runs] == ["digital-kp__levers.women_onboarding=1", "digital-kp__levers.women_onboarding=3"]
    result = run_one(runs[1], tmp_path)
    assert isinstance(result, RunResult)
    table = pq.read_table(tmp_path / "panels" / "digital-kp__levers.women_onboarding=3__seed4.parquet")
    assert set(table["variant"].to_pylist()) == {"levers.women_onboarding=3"}
    assert with_lever(load_scenario("digital-kp"), Variant("levers.women_onboarding", 3)).levers.women_onboarding == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenarios", "baseline,nowhere"], "unknown scenario"),
        (["--scenarios", "baseline", "--vary", "levers.no_such_lever=1,2"], "unknown lever"),
        (["--scenarios", "baseline", "--vary", "levers.women_onboarding"], "is not PATH=V1,V2"),
        (["--scenarios", "baseline", "--vary", "levers.women_onboarding=a,b"], "must be numbers"),
        (["--scenarios", "baseline", "--vary", "levers.women_onboarding=99"], "levers.women_onboarding=99"),
        (["--scenarios", "baseline", "--vary", "name=1"], "unknown lever"),
        (["--scenarios", "baseline", "--seeds", "0"], "--seeds"),
        (["--scenarios", "baseline", "--years", "0"], "--years"),
        (["--scenarios", "baseline", "--citizens", "0"], "--citizens"),
        (["--scenarios", ","], "--scenarios"),
    ],
)
def test_bad_input_is_refused_before_any_run(tmp_path: Path, args: list[str], message: str) -> None:
    """Unknown scenarios or levers, bad values and sizes: a two-line error and no folder made."""
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["study", *args, "--out", str(out)])
    assert isinstance(result.exception, SandboxError), result.output
    assert message in result.exception.message
    assert result.exception.hint
    assert not out.exists()


def test_summary_helpers_measure_what_they_say() -> None:
    """years_to counts days to the first crossing; final_share uses the last 30 days only."""
    assert years_to(0.5, [0.1] * 364 + [0.5]) == 1.0
    assert years_to(0.5, [0.49] * 800) is None
    assert final_share([100] * 10 + [1] * 30, [0] * 10 + [3] * 30) == 0.25
    assert final_share([0, 0], [0, 0]) == 0.0
    assert ratio_gap(0.2, 0.5) == pytest.approx(0.6)
    assert ratio_gap(0.0, 0.0) == 0.0  # no man holds an account: nothing to compare with


def _result(seed: int, female: list[float], male: list[float]) -> RunResult:
    spec = plan_runs(["baseline"], seeds=2, first_seed=1, days=len(female), citizens=300, merchants=30)[seed - 1]
    days = len(female)
    inclusion = [(f + m) / 2 for f, m in zip(female, male, strict=True)]
    return RunResult(spec, inclusion, female, male, [1] * days, [1] * days, [1] * days, [1] * days, 0.0, 0.0)


def test_the_gender_gap_is_given_in_points_and_relative_at_the_start_and_the_end() -> None:
    """Points (men − women) can widen while the relative gap (1 − women/men, GSMA's) narrows: both
    are reported, at the start and at the end, so neither hides the other."""
    runs = [_result(1, [0.10, 0.30], [0.20, 0.50]), _result(2, [0.10, 0.34], [0.20, 0.50])]
    entry = summarise(runs, [r.spec for r in runs], None)["results"][0]
    assert entry["gender_gap_start"] == pytest.approx(0.10)
    assert entry["gender_gap_final"] == pytest.approx(0.18)  # mean of 0.20 and 0.16: wider in points
    assert entry["gender_ratio_gap_start"] == pytest.approx(0.5)
    assert entry["gender_ratio_gap_final"] == pytest.approx(0.36)  # mean of 0.40 and 0.32: narrower
    assert entry["gender_ratio_gap_final_spread"] == {"min": 0.32, "max": 0.4, "sd": pytest.approx(0.0566, abs=1e-4)}
    table = summary_markdown(summarise(runs, [r.spec for r in runs], None))
    assert "| 10.0 → 18.0 | 0.50 → 0.36 |" in table
