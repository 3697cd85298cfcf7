"""The API's OpenAPI 3.1 document, as committed in docs/api/openapi.json (issue 9, item 2).

`python -m producers.api.openapi` rewrites that file from `create_app`, and docs/api/magic-values.md
from the magic-value table; tests/unit/test_api_openapi.py fails when a committed file differs, so
the documents always say what the code serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from infra.settings import Settings
from producers.api.app import create_app
from schemas.api.magic import magic_values_markdown

DOCUMENT_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"
MAGIC_VALUES_PATH: Final = DOCUMENT_PATH.with_name("magic-values.md")
REFRESH_COMMAND: Final = ".venv/bin/python -m producers.api.openapi"


def openapi_document() -> str:
    """The OpenAPI document as the committed file holds it: indented JSON, UTF-8, a final newline."""
    schema = create_app(Settings()).openapi()  # the document depends on no setting
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Writes docs/api/openapi.json and docs/api/magic-values.md."""
    DOCUMENT_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCUMENT_PATH.write_text(openapi_document(), encoding="utf-8")
    MAGIC_VALUES_PATH.write_text(magic_values_markdown(), encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH} and {MAGIC_VALUES_PATH}")


if __name__ == "__main__":
    main()
