"""bench/archive.py --fresh-processes: each side of a round is measured in a process of its own, and
each round's ratio is that round's archive rate over that round's raw rate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import bench.archive as bench_archive
from infra.settings import Settings


def test_each_round_pairs_its_own_raw_consume_with_its_own_archive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figures = iter(
        [
            {"records": 1_000, "seconds": 0.5, "cpu_s": 0.4},  # round 1: raw 2,000/s
            {"records": 1_000, "seconds": 1.0, "cpu_s": 0.9},  # round 1: archive 1,000/s
            {"records": 1_000, "seconds": 0.25, "cpu_s": 0.3},  # round 2: raw 4,000/s
            {"records": 1_000, "seconds": 0.5, "cpu_s": 0.8},  # round 2: archive 2,000/s
        ]
    )
    calls: list[tuple[str, str, Path | None]] = []

    def fake(kind: str, prefix: str, out: Path | None = None) -> dict:
        calls.append((kind, prefix, out))
        return next(figures)

    monkeypatch.setattr(bench_archive, "in_child", fake)
    rounds = bench_archive.fresh_rounds(Settings(topic_prefix="b1."), 2, tmp_path)
    assert [r["ratio"] for r in rounds] == [0.5, 0.5]
    assert [r["raw_consume_per_s"] for r in rounds] == [2_000, 4_000]
    assert [kind for kind, _, _ in calls] == ["raw", "archive", "raw", "archive"]
    assert {prefix for _, prefix, _ in calls} == {"b1."}
    assert [out for kind, _, out in calls if kind == "archive"] == [tmp_path / "fresh-1", tmp_path / "fresh-2"]


def test_a_child_that_fails_stops_the_benchmark_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failed(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == [bench_archive.__file__, "--child", "raw"]
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="error: Kafka is not reachable")

    monkeypatch.setattr(bench_archive.subprocess, "run", failed)
    with pytest.raises(RuntimeError, match="raw in its own process failed: error: Kafka is not reachable"):
        bench_archive.in_child("raw", "b1.")
