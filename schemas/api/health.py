"""`GET /healthz`: whether the API can reach what it depends on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CheckResult = Literal["ok", "unreachable"]


class HealthChecks(BaseModel):
    """One result per dependency."""

    postgres: CheckResult
    kafka: CheckResult


class Health(BaseModel):
    """`ok` (HTTP 200) when every check passed, else `unavailable` (HTTP 503)."""

    status: Literal["ok", "unavailable"]
    checks: HealthChecks = Field(description="Each dependency's answer within its time bound.")
