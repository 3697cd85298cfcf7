"""Writes a labelled simulation run as a dataset folder: PaySim, AMLSim or Parquet files plus
`export.json` (the run's parameters, rows and SHA-256 per file, label counts).

Files are written under temporary names and renamed into place only when the whole run has been
written, so a failed or interrupted export never leaves a file that looks complete. The same
seed, scenario and sizes give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from infra.errors import SandboxError
from producers.datasets import tables
from producers.datasets.formats import FORMATS, MANIFEST
from producers.datasets.labelled import AccountRow, LabelledRun, Progress, RequestRow
from producers.sim.engine import Simulation

ROWS_PER_BATCH: Final = 65_536  # rows buffered before a write (a Parquet row group at most)
HASH_CHUNK_BYTES: Final = 1 << 20
PARTIAL_PREFIX: Final = ".partial-"

MakeBatch = Callable[[list[RequestRow], list[AccountRow], int], pa.RecordBatch | None]


@dataclass(frozen=True)
class TableSpec:
    """One output file: its name, schema and how a batch of rows becomes its records."""

    name: str
    schema: pa.Schema
    make: MakeBatch

    @property
    def parquet(self) -> bool:
        return self.name.endswith(".parquet")


def _requests(make: Callable[[list[RequestRow], int], pa.RecordBatch]) -> MakeBatch:
    return lambda requests, accounts, start: make(requests, start) if requests else None


def _accounts(make: Callable[[list[AccountRow]], pa.RecordBatch]) -> MakeBatch:
    return lambda requests, accounts, start: make(accounts) if accounts else None


LAYOUTS: Final[dict[str, tuple[TableSpec, ...]]] = {
    "paysim": (TableSpec("paysim.csv", tables.PAYSIM_SCHEMA, _requests(tables.paysim_batch)),),
    "amlsim": (
        TableSpec("accounts.csv", tables.AMLSIM_ACCOUNTS_SCHEMA, _accounts(tables.amlsim_accounts_batch)),
        TableSpec(
            "transactions.csv",
            tables.AMLSIM_TRANSACTIONS_SCHEMA,
            _requests(lambda rows, start: tables.amlsim_transactions_batch(rows)),
        ),
    ),
    "parquet": (
        TableSpec("requests.parquet", tables.REQUESTS_SCHEMA, _requests(tables.requests_batch)),
        TableSpec("accounts.parquet", tables.ACCOUNTS_SCHEMA, _accounts(tables.accounts_batch)),
    ),
}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: rows per file and requests per label."""

    out_dir: Path
    rows: dict[str, int]
    labels: dict[str, int]


def check_format(name: str) -> tuple[TableSpec, ...]:
    """The files of a format, or SandboxError naming the formats there are."""
    if name not in LAYOUTS:
        raise SandboxError(f"unknown format {name!r}", f"choose one of: {', '.join(FORMATS)}")
    return LAYOUTS[name]


def prepare_out_dir(path: Path) -> None:
    """Creates the output folder if needed; SandboxError if it is a file or cannot be made."""
    if path.exists() and not path.is_dir():
        raise SandboxError(f"--out {path} is a file, not a folder", "choose a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SandboxError(f"cannot create {path}: {exc.strerror}", "choose a folder you can write to") from exc


def export_dataset(sim: Simulation, fmt: str, out_dir: Path, progress: Progress | None = None) -> ExportResult:
    """Runs `sim` (once) with labels on and writes format `fmt` into `out_dir`."""
    specs = check_format(fmt)
    prepare_out_dir(out_dir)
    run = LabelledRun(sim)
    start = sim.calendar.day(0).start_ts
    partial = {spec.name: out_dir / f"{PARTIAL_PREFIX}{spec.name}" for spec in specs}
    writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}
    rows = dict.fromkeys(partial, 0)
    try:
        for spec in specs:
            writers[spec.name] = (
                pq.ParquetWriter(partial[spec.name], spec.schema, compression="zstd")
                if spec.parquet
                else pacsv.CSVWriter(partial[spec.name], spec.schema)
            )
        accounts: list[AccountRow] = []
        requests: list[RequestRow] = []
        for new_accounts, new_requests in run.batches(progress):
            accounts += new_accounts
            requests += new_requests
            if len(accounts) + len(requests) >= ROWS_PER_BATCH:
                _write(specs, writers, rows, requests, accounts, start)
                accounts, requests = [], []
        _write(specs, writers, rows, requests, accounts, start)
        for writer in writers.values():
            writer.close()
        writers.clear()
        _publish(sim, fmt, out_dir, partial, rows, dict(sorted(run.label_counts.items())))
    except OSError as exc:
        raise SandboxError(
            f"cannot write the dataset to {out_dir}: {exc.strerror or exc}",
            "free some disk space or choose another --out folder, then run the export again",
        ) from exc
    finally:
        for writer in writers.values():
            writer.close()
        for path in partial.values():
            path.unlink(missing_ok=True)
    return ExportResult(out_dir, rows, dict(sorted(run.label_counts.items())))


def _write(
    specs: tuple[TableSpec, ...],
    writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter],
    rows: dict[str, int],
    requests: list[RequestRow],
    accounts: list[AccountRow],
    start: int,
) -> None:
    for spec in specs:
        batch = spec.make(requests, accounts, start)
        if batch is not None and batch.num_rows:
            writers[spec.name].write_batch(batch)
            rows[spec.name] += batch.num_rows


def _publish(
    sim: Simulation, fmt: str, out_dir: Path, partial: dict[str, Path], rows: dict[str, int], labels: dict[str, int]
) -> None:
    """Renames the finished files into place and writes the manifest last (also via a rename)."""
    files = {name: {"rows": rows[name], "sha256": _sha256(path)} for name, path in partial.items()}
    config = sim.config
    manifest = {
        "format": fmt,
        "seed": config.seed,
        "scenario": config.scenario.name,
        "days": config.days,
        "citizens": config.citizens,
        "merchants": config.merchants,
        "start": config.start.isoformat(),
        "files": files,
        "labels": labels,
    }
    for name, path in partial.items():
        path.replace(out_dir / name)
    temporary = out_dir / f"{PARTIAL_PREFIX}{MANIFEST}"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    temporary.replace(out_dir / MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
