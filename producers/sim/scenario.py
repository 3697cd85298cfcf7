"""Policy scenarios: TOML files of adoption coefficients and policy levers.

A scenario is named (`baseline`, `digital-kp`, the files in `producers/scenarios/`) or given as
a path to a `.toml` file. Unknown names and malformed files raise `SandboxError` saying what to fix.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from infra.errors import SandboxError


class Adoption(BaseModel):
    """Coefficients of the adoption model (see docs/simulation.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    innovation_per_year: float = Field(ge=0, le=5)
    imitation_per_year: float = Field(ge=0, le=5)
    activation_per_year: float = Field(ge=0, le=5)
    female_multiplier: float = Field(gt=0, le=5)


class Levers(BaseModel):
    """Policy levers a scenario turns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    merchant_qr_rollout_per_year: float = Field(ge=0, le=1)
    connectivity: float = Field(gt=0, le=10)
    connectivity_max: float = Field(gt=0, le=10)
    connectivity_growth_per_year: float = Field(ge=0, le=2)
    g2p_into_wallets: float = Field(ge=0, le=1)
    women_onboarding: float = Field(gt=0, le=10)
    women_phone_access: float = Field(gt=0, le=10)
    incentives: float = Field(gt=0, le=5)

    @model_validator(mode="after")
    def check_connectivity_saturates_above_start(self) -> Levers:
        """Connectivity saturates at `connectivity_max`, which cannot lie below where it starts."""
        if self.connectivity_max < self.connectivity:
            raise ValueError("connectivity_max must be at least connectivity")
        return self


class Scenario(BaseModel):
    """One policy scenario."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")
    description: str = Field(max_length=300)
    adoption: Adoption
    levers: Levers


def available_scenarios() -> list[str]:
    """Names of the scenarios shipped in `producers/scenarios/`."""
    folder = resources.files("producers.scenarios")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def parse_scenario(text: str, where: str) -> Scenario:
    """Parses scenario TOML text. Raises SandboxError naming the file and the bad entry."""
    hint = "fix the file; see producers/scenarios/baseline.toml and docs/simulation.md for every field"
    try:
        return Scenario.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise SandboxError(f"scenario file {where} is not valid TOML: {exc}", hint) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise SandboxError(f"scenario file {where}: '{location}' {first['msg']}", hint) from exc


def load_scenario(name_or_path: str) -> Scenario:
    """Loads a shipped scenario by name, or a scenario file by path."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SandboxError(
                f"cannot read scenario file {path}: {exc.strerror}", "check the path to the .toml file"
            ) from exc
        return parse_scenario(text, str(path))
    names = available_scenarios()
    if name_or_path not in names:
        raise SandboxError(
            f"unknown scenario '{name_or_path}'",
            f"use one of {', '.join(names)} or a path to a scenario .toml file",
        )
    text = resources.files("producers.scenarios").joinpath(f"{name_or_path}.toml").read_text()
    return parse_scenario(text, f"producers/scenarios/{name_or_path}.toml")
