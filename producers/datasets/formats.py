"""The dataset formats `kpsandbox export` writes and its manifest's name (no pyarrow: the CLI reads
these at start-up for its help; `export.py` writes the files)."""

from __future__ import annotations

from typing import Final

FORMATS: Final = ("paysim", "amlsim", "parquet")
MANIFEST: Final = "export.json"
