"""The main job end to end on real services: simulate → Kafka → ledger process → report."""

from __future__ import annotations

import asyncio
from pathlib import Path

from infra.settings import Settings
from kpsandbox.demo.report import write_report
from kpsandbox.demo.run import prepare_run, run_pipeline
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from tests.conftest import RUN_ID


def test_demo_pipeline_settles_every_request_and_writes_the_report(settings: Settings, tmp_path: Path) -> None:
    """Every request gets one outcome, only naturally-unknown accounts are rejected as such, charts exist."""
    run_settings = asyncio.run(prepare_run(settings, f"{RUN_ID}x"))
    config = SimulationConfig(seed=7, days=40, citizens=400, merchants=40, scenario=load_scenario("digital-kp"))
    sim = Simulation(config)
    run = asyncio.run(run_pipeline(run_settings, sim, tmp_path, lambda *_: None))
    requests = sum(sim.stats.events_by_type.get(t, 0) for t in ("payment.requested", "payment.post_requested",
                   "payment.void_requested", "cash.in", "cash.out"))  # fmt: skip
    assert requests > 500
    assert run.outcomes.settled + run.outcomes.rejected == requests
    assert all(f.holds for f in run.findings), [f for f in run.findings if not f.holds]
    # Accounts are produced (and acknowledged) before requests naming them, so the ledger only
    # answers account_not_found where the simulation meant an unknown payee.
    assert run.outcomes.rejected_by_result["account_not_found"] == sim.stats.expected_account_not_found
    assert run.outcomes.latencies_ms and min(run.outcomes.latencies_ms) >= 0
    written = write_report(run, tmp_path / "report")
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "all invariants hold" in summary and "digital_share_by_district.png" in summary
