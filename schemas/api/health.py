"""`GET /readyz` and `GET /healthz`: whether the API, and the sandbox around it, can serve.

`/readyz` is the API process alone — it answers, and PostgreSQL and Kafka answer it — which is what
a supervisor or a test waits for after starting it. `/healthz` adds the sandbox's other processes
a payment needs: the ledger (which decides) and the metrics consumer (which counts).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

HealthStatus = Literal["ok", "unavailable"]


class Check(BaseModel):
    """One component's answer within its time bound."""

    ok: bool
    detail: str = Field(description="What answered where; when not ok, what to do about it.")


class ReadyChecks(BaseModel):
    """What the API process itself depends on."""

    postgres: Check
    kafka: Check


class HealthChecks(ReadyChecks):
    """The API's own dependencies plus the processes that settle and count its payments."""

    ledger: Check
    metrics: Check


class Ready(BaseModel):
    """`ok` (HTTP 200) when the API can serve requests, else `unavailable` (HTTP 503)."""

    status: HealthStatus
    checks: ReadyChecks


class Health(BaseModel):
    """`ok` (HTTP 200) when the API, the ledger and the metrics consumer are up, else `unavailable` (HTTP 503)."""

    status: HealthStatus
    checks: HealthChecks = Field(description="Each component's answer within its time bound.")
