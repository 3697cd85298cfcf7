"""The archive format shared by the archiver (consumers/archive) and the replayer (producers/replay).

An archive is a folder of Parquet files partitioned by topic and simulated date, plus one
`manifest.json` that is the only source of truth: a Parquet file the manifest does not list is
left over from an interrupted run and is ignored (and removed by the next `kpsandbox archive`).
The manifest is written last, to a temporary name and renamed, so a reader never sees a
half-written one.

    DIR/manifest.json
    DIR/topic=<catalog name>/date=<YYYY-MM-DD>/part-<n>.parquet
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field, ValidationError

from infra.errors import SandboxError
from schemas.events import EVENT_MODELS

MANIFEST_NAME: Final = "manifest.json"
FORMAT_NAME: Final = "kpsandbox-archive"
# Bump on any change an older replayer could not read (a renamed column, a new layout).
FORMAT_VERSION: Final = 1
PART_GLOB: Final = "topic=*/date=*/*.parquet"
COUNTING_NOTE: Final = (
    "rows are the records a read_committed consumer returns: end offset - start offset, minus"
    " transaction markers and aborted records (none for the sandbox's own idempotent producers)"
)


def schema_versions() -> dict[str, int]:
    """The SCHEMA_VERSION of every event type this build of the sandbox reads and writes."""
    return {name: model.SCHEMA_VERSION for name, model in sorted(EVENT_MODELS.items())}


class PartitionRange(BaseModel):
    """Which offsets of one partition the archive holds: [start, end), and how many records."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    rows: int = Field(ge=0)


class PartFile(BaseModel):
    """One Parquet file: where, its checksum, and which offsets of which partitions it holds."""

    path: str
    topic: str
    date: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    offsets: dict[str, tuple[int, int]] = Field(description="partition -> (first, last) offset in this file")


class RunInfo(BaseModel):
    """What is known of the run the archive was taken from (seed, scenario, sizes: when known)."""

    run_id: str | None = None
    prefix: str = ""
    seed: int | None = None
    scenario: str | None = None
    sizes: dict[str, int] | None = None


class Manifest(BaseModel):
    """Everything a reader needs to trust and use the archive's files."""

    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    run: RunInfo
    schema_versions: dict[str, int] = Field(default_factory=schema_versions)
    complete: bool = Field(default=False, description="True once a run reached every partition's end offset.")
    counting: str = COUNTING_NOTE
    updated_at: str | None = None
    next_part: int = 0
    partitions: dict[str, dict[str, PartitionRange]] = Field(default_factory=dict)
    files: list[PartFile] = Field(default_factory=list)

    @property
    def rows(self) -> int:
        """Records archived, over every topic."""
        return sum(r.rows for parts in self.partitions.values() for r in parts.values())

    def rows_by_topic(self) -> dict[str, int]:
        """Records archived per catalog topic."""
        return {topic: sum(r.rows for r in parts.values()) for topic, parts in self.partitions.items()}


def part_path(topic: str, date: str, number: int) -> str:
    """The relative path of part file `number` of one topic and simulated date."""
    return f"topic={topic}/date={date}/part-{number:06d}.parquet"


def load_manifest(folder: Path) -> Manifest:
    """Reads and checks an archive's manifest; SandboxError if it is no archive or too new to read."""
    path = folder / MANIFEST_NAME
    hint_not = "pass a folder written by `kpsandbox archive --out DIR` (it holds manifest.json)"
    if not path.is_file():
        raise SandboxError(f"{folder} is not a kpsandbox archive (no {MANIFEST_NAME})", hint_not)
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SandboxError(f"{path} cannot be read as JSON: {error}", hint_not) from error
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise SandboxError(f"{path} is not a kpsandbox archive manifest", hint_not)
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SandboxError(
            f"{folder} is archive format version {version}; this sandbox reads up to {FORMAT_VERSION}",
            "upgrade kpsandbox to read it (or re-archive the run with this version)",
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as error:
        raise SandboxError(f"{path} is damaged: {error.errors()[0]['msg']}", hint_not) from error
    check_schema_versions(manifest, folder)
    return manifest


def check_schema_versions(manifest: Manifest, folder: Path) -> None:
    """Refuses an archive holding an event type in a newer schema version than this build knows."""
    known = schema_versions()
    newer = {name: v for name, v in manifest.schema_versions.items() if v > known.get(name, v)}
    if newer:
        listed = ", ".join(f"{name} v{v} (we read v{known[name]})" for name, v in sorted(newer.items()))
        raise SandboxError(
            f"{folder} holds events of a newer schema: {listed}", "upgrade kpsandbox to replay this archive"
        )


def write_atomically(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Writes to a temporary name, syncs, then renames: readers see the old or the new file, never half.

    `sync=False` leaves syncing to the caller (many part files, then one `os.sync()` before the
    manifest that lists them: one journal commit instead of one per file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_manifest(folder: Path, manifest: Manifest) -> None:
    """Writes the manifest atomically (the last step of every archive checkpoint)."""
    write_atomically(folder / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode())
