"""The committed docs/api/openapi.json is exactly what create_app serves at /openapi.json."""

from __future__ import annotations

import json

from producers.api.openapi import DOCUMENT_PATH, REFRESH_COMMAND, openapi_document


def test_committed_openapi_matches_the_app() -> None:
    """Regenerates the OpenAPI document from create_app and compares it with the committed file."""
    assert DOCUMENT_PATH.exists(), f"docs/api/openapi.json is missing: run `{REFRESH_COMMAND}`"
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == openapi_document(), (
        f"docs/api/openapi.json is out of date: run `{REFRESH_COMMAND}` and commit the result"
    )


def test_openapi_is_3_1_and_every_error_is_a_problem() -> None:
    """The document is OpenAPI 3.1, documents the bearer key, and every 4xx/5xx response is problem+json."""
    schema = json.loads(openapi_document())
    assert schema["openapi"].startswith("3.1")
    assert schema["components"]["securitySchemes"]["SecretKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["SecretKey"]["description"],
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/healthz", "/readyz"):
                    assert list(response["content"]) == ["application/problem+json"], (path, method, status)
