"""`kpsandbox up` to healthy with the jars cached, and the total RSS of the three services.

Runs a separate stack (own state folder and ports) from cold: down → up → measure → down.
Targets: ≤ 30 s to healthy; ≤ 1.5 GiB total RSS (PostgreSQL counted with its children).

    .venv/bin/python bench/services_up.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from infra.local import procs, stack
from infra.settings import Settings, load_settings

BENCH_PORTS = {
    "kafka_port": 59092,
    "kafka_controller_port": 59093,
    "postgres_port": 55432,
    "prometheus_port": 59090,
    "metrics_port": 59464,
}


def _tree_rss(pid: int) -> int:
    """RSS of a process plus its direct children (PostgreSQL's backends and workers)."""
    total = procs.rss_bytes(pid)
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            total += procs.rss_bytes(int(child.name))
    return total


def one_run(state_dir: Path) -> tuple[float, int]:
    """Seconds from `up` to healthy (storage already formatted), and total RSS once healthy."""
    settings = Settings(state_dir=state_dir, cache_dir=load_settings().cache_dir, **BENCH_PORTS)
    stack.down(settings)
    began = time.perf_counter()
    report = stack.up(settings)
    seconds = time.perf_counter() - began
    time.sleep(2)  # let the JVM settle before reading RSS
    rss = sum(_tree_rss(s.pid) for s in stack.status(settings) if s.pid)
    assert sorted(report.started) == ["kafka", "postgres", "prometheus"], report.started
    stack.down(settings)
    return seconds, rss


def main() -> None:
    """Prints the median up-to-healthy time and peak RSS over a few cold starts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kpsandbox-bench-", dir="/var/tmp") as folder:
        first = one_run(Path(folder))  # formats storage and runs initdb: not a cached start
        runs = [one_run(Path(folder)) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "benchmark": "services_up",
                "first_start_s (initdb + format)": round(first[0], 2),
                "up_to_healthy_s_median": round(statistics.median(r[0] for r in runs), 2),
                "up_to_healthy_s_max": round(max(r[0] for r in runs), 2),
                "total_rss_mib_max": round(max(r[1] for r in runs) / 2**20, 1),
                "targets": {"up_to_healthy_s": 30, "total_rss_mib": 1536},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
