"""The demo's report folder: summary.md, the fit report and PNG charts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kpsandbox.demo.outcomes import OutcomeTally
from kpsandbox.demo.run import DemoRun
from producers.sim.fit import fit_report
from producers.sim.stats import DayStats

WINDOW_DAYS: Final = 30


@dataclass(frozen=True)
class DistrictShift:
    """Digital share of retail payments by count in the first and last window of the run."""

    district: str
    start: float
    end: float


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def district_shifts(days: Sequence[DayStats]) -> list[DistrictShift]:
    """Per district: mean daily digital share over the first and the last 30 simulated days."""
    if not days:
        return []
    window = min(WINDOW_DAYS, len(days))
    first, last = days[:window], days[-window:]
    names = sorted(days[0].digital_share_by_district)
    return [
        DistrictShift(
            name,
            _mean([d.digital_share_by_district.get(name, 0.0) for d in first]),
            _mean([d.digital_share_by_district.get(name, 0.0) for d in last]),
        )
        for name in names
    ]


def window_share(days: Sequence[DayStats], *, last: bool, by_value: bool) -> float:
    """Digital share over the first or last window, weighted by count or value."""
    window = min(WINDOW_DAYS, len(days))
    chosen = days[-window:] if last else days[:window]
    if by_value:
        digital = sum(d.digital_value_paisa for d in chosen)
        total = digital + sum(d.cash_value_paisa for d in chosen)
    else:
        digital = sum(d.digital_count for d in chosen)
        total = digital + sum(d.cash_count for d in chosen)
    return digital / total if total else 0.0


def write_report(run: DemoRun, folder: Path) -> list[Path]:
    """Writes summary.md, fit.json/fit.txt and the four charts; returns the files written."""
    from kpsandbox.demo import charts  # matplotlib (0.5 s): only when charts are drawn, not at CLI start

    folder.mkdir(parents=True, exist_ok=True)
    sim, days = run.sim, run.sim.days
    populations = dict(zip(sim.stats.districts, sim.stats.citizens_by_district, strict=False))
    written = [
        charts.digital_share_by_district(days, folder / "digital_share_by_district.png", populations),
        charts.inclusion_by_gender(days, folder / "inclusion_by_gender.png"),
        charts.ticket_sizes(sim.stats.tickets, folder / "ticket_sizes.png"),
        charts.settlement_latency(run.outcomes.latencies_ms, folder / "settlement_latency.png"),
    ]
    fit = fit_report(sim.config.calibration, sim.stats)
    (folder / "fit.json").write_text(fit.to_json())
    (folder / "fit.txt").write_text(fit.to_text() + "\n")
    written += [folder / "fit.json", folder / "fit.txt"]
    summary = folder / "summary.md"
    summary.write_text(summary_markdown(run, fit.within))
    written.append(summary)
    return written


def _results(tally: OutcomeTally) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in tally.rejected_by_result.most_common()) or "-"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def summary_markdown(run: DemoRun, fit_within: bool) -> str:
    """The run as a short Markdown report with the charts inline."""
    sim, days, tally = run.sim, run.sim.days, run.outcomes
    config = sim.config
    holds = all(f.holds for f in run.findings)
    lines = [
        f"# Demo run — scenario `{config.scenario.name}`, seed {config.seed}",
        "",
        f"{config.citizens:,} citizens, {config.merchants:,} merchants, {config.days} simulated days from "
        f"{config.start.isoformat()}. Topics `{run.settings.topic_prefix}*`, "
        f"database `{run.settings.dsn.rsplit('/', 1)[-1]}`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| events produced | {run.produced:,} in {run.produce_seconds:.1f} s |",
        f"| requests settled / rejected | {tally.settled:,} / {tally.rejected:,} |",
        f"| rejections by result | {_results(tally)} |",
        f"| authorisations expired (`payment.expired`) | {tally.expired:,} |",
        f"| duplicate outcomes seen (deduplicated) | {tally.duplicates:,} |",
        f"| ledger check | {'all invariants hold' if holds else 'VIOLATIONS — see below'} |",
        f"| ledger digest | `{run.digest[:16]}…` (see Reproducibility) |",
        f"| fit report | {'within tolerance' if fit_within else 'some series outside tolerance (fit.txt)'} |",
        "",
        "## Cash-to-digital shift",
        "",
        "| | first 30 days | last 30 days |",
        "|---|---|---|",
        f"| digital share by count | {_pct(window_share(days, last=False, by_value=False))} | "
        f"{_pct(window_share(days, last=True, by_value=False))} |",
        f"| digital share by value | {_pct(window_share(days, last=False, by_value=True))} | "
        f"{_pct(window_share(days, last=True, by_value=True))} |",
        "",
        "| district | digital share (count), start | end |",
        "|---|---|---|",
        *[f"| {s.district} | {_pct(s.start)} | {_pct(s.end)} |" for s in district_shifts(days)],
        "",
        "![digital share by district](digital_share_by_district.png)",
        "",
        "## Financial inclusion by gender",
        "",
        "| | first day | last day |",
        "|---|---|---|",
        *[
            f"| {g} | {_pct(days[0].inclusion_by_gender.get(g, 0))} | {_pct(days[-1].inclusion_by_gender.get(g, 0))} |"
            for g in ("female", "male", "all")
        ],
        "",
        "![inclusion by gender](inclusion_by_gender.png)",
        "",
        "## Ticket sizes and settlement latency",
        "",
        "![ticket sizes](ticket_sizes.png)",
        "",
        "Latency is wall-clock time from the simulation producing a request to the ledger publishing its "
        "outcome (Kafka record timestamps). The simulation produces as fast as it can, so this includes "
        "queueing behind the burst, not just settlement work.",
        "",
        "![settlement latency](settlement_latency.png)",
        "",
        "## Reproducibility",
        "",
        "The event stream is byte-identical for the same seed, scenario and sizes. In this live run the "
        "ledger settled requests while they were being produced, so which of two payments touching one "
        "account from different partitions came first depends on timing, and a balance-dependent "
        "outcome (`exceeds_credits`) can differ between live runs. Replaying the complete stream into "
        "an empty database (`kpsandbox settle --until-idle --group NEW` with a fresh "
        "`KPSANDBOX_DATABASE_URL`) merges partitions in `occurred_at` order and always gives the same "
        "`kpsandbox ledger digest`.",
        "",
        "## Ledger reconciliation",
        "",
        *[f"- {'✓' if f.holds else '✗'} {f.name}: {f.detail}" for f in run.findings],
        "",
    ]
    return "\n".join(lines)
