"""Schemathesis against the running API's /openapi.json (issue 9, item 10): for every operation, requests
generated from the document — valid ones and invalid ones — never get a 5xx, and every response matches
the document (status code, content type, headers, body schema).

One API process serves the whole module (`running_api`), so the run happens once per test session.
The run is bounded: EXAMPLES_PER_OPERATION examples per operation and mode, each request within the
HTTP timeout, no shrinking; it takes well under a minute on the 2-core development machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Final

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from infra.settings import Settings
from producers.api.openapi import DOCUMENT_PATH
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _auth, _tenant_key, running_api

EXAMPLES_PER_OPERATION: Final = 12
HEALTHZ: Final = "/healthz"
CHECKS: Final = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's run, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-schemathesis-state"), "api_st") as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(api: RunningApi) -> schemathesis.BaseSchema:
    """The served document, with a working tenant key on every generated request."""
    key = asyncio.run(_tenant_key(api.config, "schemathesis"))
    config = SchemathesisConfig.from_dict(
        {
            "base-url": api.url,
            "headers": _auth(key),
        }
    )
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=config, timeout=HTTP_TIMEOUT_S)


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, from the committed document (a unit test keeps it
    equal to the served one), so each operation is its own test."""
    document = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return [(method.upper(), path) for path, methods in document["paths"].items() for method in methods]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: value)
def test_every_operation_answers_as_documented(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    """No 5xx, and status, content type, headers and body as /openapi.json documents them, for valid
    (positive) and invalid (negative) requests generated from the served document."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,  # the bound is per request (HTTP_TIMEOUT_S); a payment's ?wait may take seconds
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing example is reported
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks, timeout=HTTP_TIMEOUT_S)

    # /healthz's 503 is its documented answer while no ledger or metrics consumer runs (none does
    # here); its body is still checked against the document.
    checks = [check for check in CHECKS if path != HEALTHZ or check is not schemathesis.checks.not_a_server_error]
    try:
        answers_as_documented()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
        pytest.skip(f"{method} {path} takes no input that can be made invalid (only free-form strings, or none)")
