"""Policy studies: every (scenario, lever variant, seed) run of the simulation, in aggregate-only
mode, each writing its per-day panel; `study_summary.py` turns the results into `summary.json`.

Everything here is a pure function of its arguments (the seed fixes each run), so a study is
reproduced bit for bit by running it again with the same arguments. `plan_runs` checks every
scenario and lever before anything runs; `run_one` is what a worker process executes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from infra.errors import SandboxError
from producers.sim.engine import Simulation, SimulationConfig, check_parameters
from producers.sim.scenario import Scenario, load_scenario

DAYS_PER_YEAR: Final = 365
SEEDS_MAX: Final = 1_000
VARIANT_VALUES_MAX: Final = 50
RUNS_MAX: Final = 10_000
PANELS_FOLDER: Final = "panels"
VARY_HINT: Final = "write it as --vary levers.women_onboarding=1,2,3 (a dotted path in the scenario, numbers)"


@dataclass(frozen=True)
class Variant:
    """One value of the lever a study varies: `path` is dotted into the scenario (levers.x)."""

    path: str
    value: float

    @property
    def label(self) -> str:
        return f"{self.path}={self.value:g}"


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: everything `run_one` needs, small enough to send to a worker."""

    scenario: str  # a shipped scenario name or a .toml path, as given
    variant: Variant | None
    seed: int
    days: int
    citizens: int
    merchants: int

    @property
    def group(self) -> str:
        """The scenario/variant this run is a seed of: '<scenario>[__<path>=<value>]'."""
        name = Path(self.scenario).stem if self.scenario.endswith(".toml") else self.scenario
        return name if self.variant is None else f"{name}__{self.variant.label}"

    @property
    def panel_name(self) -> str:
        return f"{self.group}__seed{self.seed}.parquet"


@dataclass(frozen=True)
class RunResult:
    """What the summary needs from one run: per-day series (index = day), and its timing."""

    spec: RunSpec
    inclusion: list[float]
    inclusion_female: list[float]
    inclusion_male: list[float]
    digital_count: list[int]
    digital_value_paisa: list[int]
    cash_count: list[int]
    cash_value_paisa: list[int]
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time: the fair figure on a busy machine


@dataclass(frozen=True)
class RunFailure:
    """A run that failed with a user-fixable error (sent back whole: SandboxError does not pickle)."""

    spec: RunSpec
    message: str
    hint: str


def parse_vary(text: str) -> tuple[str, list[float]]:
    """'levers.women_onboarding=1,2,3' → ('levers.women_onboarding', [1.0, 2.0, 3.0])."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise SandboxError(f"--vary '{text}' is not PATH=V1,V2,...", VARY_HINT)
    try:
        numbers = [float(v) for v in values.split(",")]
    except ValueError as exc:
        raise SandboxError(f"--vary '{text}': the values must be numbers", VARY_HINT) from exc
    if len(numbers) > VARIANT_VALUES_MAX or len(set(numbers)) != len(numbers):
        raise SandboxError(f"--vary '{text}': give 1 to {VARIANT_VALUES_MAX} distinct values", VARY_HINT)
    return path.strip(), numbers


def lever_paths(scenario: Scenario) -> list[str]:
    """Every numeric setting of a scenario as a dotted path (what --vary may name)."""
    paths: list[str] = []

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                paths.append(f"{prefix}{key}")

    walk("", scenario.model_dump())
    return paths


def with_lever(scenario: Scenario, variant: Variant) -> Scenario:
    """The scenario with one setting replaced; SandboxError for an unknown path or a bad value."""
    known = lever_paths(scenario)
    if variant.path not in known:
        raise SandboxError(f"unknown lever '{variant.path}' in --vary", f"use one of: {', '.join(known)}")
    data = scenario.model_dump()
    *parents, leaf = variant.path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = variant.value
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise SandboxError(f"--vary {variant.label}: {problem}", "choose values inside the lever's range") from exc


def plan_runs(
    scenarios: list[str],
    *,
    seeds: int,
    first_seed: int,
    days: int,
    citizens: int,
    merchants: int,
    vary: str | None = None,
) -> list[RunSpec]:
    """Every run of the study, in a fixed order; raises SandboxError before anything runs if a
    scenario, a lever, a value or a size is wrong."""
    check_parameters(days, citizens, merchants)
    if not 1 <= seeds <= SEEDS_MAX:
        raise SandboxError(f"--seeds must be between 1 and {SEEDS_MAX}, got {seeds}", "e.g. --seeds 5")
    names = [s.strip() for s in scenarios if s.strip()]
    if not names or len(set(names)) != len(names):
        raise SandboxError("--scenarios needs distinct scenario names", "e.g. --scenarios baseline,digital-kp")
    variants: list[Variant | None] = [None]
    if vary is not None:
        path, values = parse_vary(vary)
        variants = [Variant(path, v) for v in values]
    for name in names:
        scenario = load_scenario(name)
        for variant in variants:
            if variant is not None:
                with_lever(scenario, variant)
    runs = [
        RunSpec(name, variant, first_seed + k, days, citizens, merchants)
        for name in names
        for variant in variants
        for k in range(seeds)
    ]
    if len(runs) > RUNS_MAX:
        raise SandboxError(f"{len(runs):,} runs is more than {RUNS_MAX:,}", "use fewer seeds, scenarios or values")
    return runs


def run_one(spec: RunSpec, out: Path) -> RunResult | RunFailure:
    """Runs one simulation in aggregate-only mode and writes its panel to out/panels/."""
    from producers.sim.panel import panel_table, write_panel  # pyarrow: in the worker, not at CLI start

    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        scenario = load_scenario(spec.scenario)
        if spec.variant is not None:
            scenario = with_lever(scenario, spec.variant)
        config = SimulationConfig(
            seed=spec.seed, days=spec.days, citizens=spec.citizens, merchants=spec.merchants, scenario=scenario
        )
        sim = Simulation(config, emit_events=False)
        stats = sim.run_aggregates()
        variant = spec.variant.label if spec.variant is not None else ""
        table = panel_table(stats.panel, scenario.name, spec.seed, variant)
        write_panel(table, out / PANELS_FOLDER / spec.panel_name)
    except SandboxError as error:
        return RunFailure(spec, error.message, error.hint)
    days = sim.days
    return RunResult(
        spec=spec,
        inclusion=[d.inclusion_by_gender["all"] for d in days],
        inclusion_female=[d.inclusion_by_gender["female"] for d in days],
        inclusion_male=[d.inclusion_by_gender["male"] for d in days],
        digital_count=[d.digital_count for d in days],
        digital_value_paisa=[d.digital_value_paisa for d in days],
        cash_count=[d.cash_count for d in days],
        cash_value_paisa=[d.cash_value_paisa for d in days],
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
    )
