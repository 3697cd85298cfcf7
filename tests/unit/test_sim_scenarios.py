"""Scenarios, calibration and the fit report: the policy levers move inclusion as intended."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pytest

from infra.errors import SandboxError
from producers.sim.calibration import load_calibration, parse_calibration
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.fit import fit_report, nrmse
from producers.sim.scenario import available_scenarios, load_scenario, parse_scenario


@cache
def _study(scenario: str) -> Simulation:
    """Two simulated years of a small population (a scenario study)."""
    sim = Simulation(
        SimulationConfig(seed=2024, days=730, citizens=1_500, merchants=150, scenario=load_scenario(scenario))
    )
    for _ in sim.records():
        pass
    return sim


def test_shipped_scenarios_load() -> None:
    """baseline and digital-kp ship and parse."""
    assert {"baseline", "digital-kp"} <= set(available_scenarios())
    assert load_scenario("digital-kp").levers.g2p_into_wallets > load_scenario("baseline").levers.g2p_into_wallets


def test_unknown_scenario_is_a_sandbox_error() -> None:
    """An unknown name says which scenarios exist."""
    with pytest.raises(SandboxError, match="unknown scenario") as info:
        load_scenario("utopia")
    assert "baseline" in info.value.hint


def test_malformed_scenario_files_are_sandbox_errors(tmp_path) -> None:
    """Invalid TOML and a missing or out-of-range field each name the problem."""
    with pytest.raises(SandboxError, match="not valid TOML"):
        parse_scenario("name = [", "x.toml")
    text = (resources.files("producers.scenarios") / "baseline.toml").read_text()
    with pytest.raises(SandboxError, match=r"levers\.incentives"):
        parse_scenario(text.replace("incentives = 1.0", "incentives = -2"), "bad.toml")
    path = tmp_path / "missing.toml"
    path.write_text(text.replace("[adoption]", "[adoptio]"))
    with pytest.raises(SandboxError, match=r"missing\.toml"):
        load_scenario(str(path))


def test_every_calibration_figure_names_a_known_source() -> None:
    """A figure with an unknown source key is rejected; the shipped file passes."""
    load_calibration()

    raw = json.loads(resources.files("producers.calibration").joinpath("kp.json").read_text())
    raw["tickets"]["p2p"]["source"] = "a blog"
    with pytest.raises(ValueError, match="unknown source"):
        parse_calibration(raw)


def test_nrmse_is_zero_on_target_and_grows_with_error() -> None:
    """NRMSE is 0 when simulated equals target and 0.1 for a uniform 10% miss."""
    assert nrmse({"a": 1.0, "b": 3.0}, {"a": 1.0, "b": 3.0}) == 0
    assert nrmse({"a": 1.1, "b": 0.9}, {"a": 1.0, "b": 1.0}) == pytest.approx(0.1)


def test_default_run_fits_calibration_within_tolerance() -> None:
    """The default CLI run (seed 42, 30 days, 10,000 citizens, baseline) fits every target."""
    sim = Simulation(SimulationConfig(seed=42, days=30, citizens=10_000, merchants=1_000))
    for _ in sim.records():
        pass
    report = fit_report(sim.config.calibration, sim.stats)
    assert report.within, report.to_text()
    assert json.loads(report.to_json())["within_tolerance"] is True


def test_digital_kp_moves_inclusion_and_digital_share_faster_than_baseline() -> None:
    """Over the same two years, digital-kp ends with more women included, a smaller gender ratio gap
    and a higher digital share (by count and by value) than baseline."""
    base, policy = _study("baseline"), _study("digital-kp")
    b_end, p_end = base.days[-1].inclusion_by_gender, policy.days[-1].inclusion_by_gender
    assert base.days[0].inclusion_by_gender == policy.days[0].inclusion_by_gender
    assert p_end["female"] > b_end["female"] + 0.05
    assert p_end["all"] > b_end["all"]
    assert p_end["female"] / p_end["male"] > b_end["female"] / b_end["male"]

    def last_quarter(sim: Simulation) -> tuple[float, float]:
        days = sim.days[-90:]
        dc = sum(d.digital_count for d in days)
        cc = sum(d.cash_count for d in days)
        dv = sum(d.digital_value_paisa for d in days)
        cv = sum(d.cash_value_paisa for d in days)
        return dc / (dc + cc), dv / (dv + cv)

    base_count, base_value = last_quarter(base)
    policy_count, policy_value = last_quarter(policy)
    assert policy_count > base_count * 1.3
    assert policy_value > base_value
