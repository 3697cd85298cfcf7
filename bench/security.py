"""Ledger settled/s over SASL_SSL against PLAINTEXT, in one run (issue 14, "Speed": ≥ 0.8×).

    .venv/bin/python bench/security.py [--payments 100000] [--runs 2] [--keep]

Plaintext is the broker of `kpsandbox up` (the dev stack; its PostgreSQL serves both). The secured
broker is the bench's own: KPSANDBOX_KAFKA_SECURITY=sasl_ssl on its own ports (19192/19193) and
state folder (`<state>/bench-sasl/`), started here and stopped at the end. Both brokers get the
same stream, runs alternate (plaintext, sasl, plaintext, sasl, …) so drift hits both alike, and
each run has its own database and topic prefix (bench/ledger.py `preload`, `timed_drain`).

In a secured run the ledger child logs in as `kp-ledger` with its real least-privilege ACLs
(`apply_service_acls` for the run's prefix), over TLS with SCRAM-SHA-512: it gets the secured
settings in local mode through `settings_env` (state folder, port, security), so it reads its own
password and the CA from the bench's state folder. The bench's producer and admin log in as
`kp-admin`. Durability is the same on both: acks=all producers, synchronous_commit on.
Prints one JSON object: every run, the medians, and the ratio sasl ÷ plaintext of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import REPO, account_events, clean_up, payment_stream, population, preload, timed_drain
from infra.errors import SandboxError, run_main
from infra.kafka_principals import apply_service_acls
from infra.local import procs
from infra.local.kafka import KafkaService
from infra.settings import Settings, load_settings, settings_env, with_overrides

SECURED_PORTS: Final = {"kafka_port": 19192, "kafka_controller_port": 19193}  # never the tests' 39xxx
STATE_SUBDIR: Final = "bench-sasl"
TARGET_RATIO: Final = 0.8
MODES: Final = ("plaintext", "sasl_ssl")


def secured_settings(base: Settings) -> Settings:
    """The bench's own secured broker beside the dev stack, sharing its PostgreSQL."""
    if not base.kafka_embedded or base.kafka_security != "plaintext":
        raise SandboxError(
            "bench/security.py compares the plaintext broker of `kpsandbox up` with a secured one it starts",
            "unset KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS and KPSANDBOX_KAFKA_SECURITY, then `kpsandbox up`",
        )
    return with_overrides(
        base,
        state_dir=base.state_dir / STATE_SUBDIR,
        kafka_security="sasl_ssl",
        database_url=base.dsn,
        **SECURED_PORTS,
    )


def child_env(config: Settings) -> dict[str, str]:
    """The ledger child's environment: exactly `config` (local mode), none of ours KPSANDBOX_*."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KPSANDBOX_")}
    return env | settings_env(config) | {"PYTHONPATH": str(REPO)}


def start_secured_broker(secured: Settings) -> KafkaService:
    """Prepares (CA, principals, storage: once per state folder) and starts the secured broker."""
    kafka = KafkaService(secured)
    kafka.prepare()
    kafka.start()
    kafka.wait_healthy()
    return kafka


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid(settings: Settings) -> int:
    """The PID of the local broker these settings name (it must be running)."""
    kafka = KafkaService(settings)
    pid = procs.owned_pid(kafka.pid_file, str(kafka.home))
    if pid is None:
        raise SandboxError(f"no local Kafka broker runs for {kafka.home}", "run `kpsandbox up` first")
    return pid


def children_cpu_s() -> float:
    """CPU seconds of this process's finished (waited-for) children: the ledger runs one at a time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_run(base: Settings, mode: str, n: int, stream: tuple[list, list], payments: int) -> dict:
    """Pre-loads the stream on `base`'s broker and times the ledger draining it. CPU per payment
    (the ledger child's and the broker's, over the whole drain) is less sensitive than settled/s
    to what else runs on the machine, so it shows where TLS and SASL cost."""
    config = await preload(base, f"{mode[:4]}{n}", *stream)
    if mode == "sasl_ssl":
        await apply_service_acls(config)  # the run's prefix: the ledger is authorised like in `up`
    broker = broker_pid(base)
    load_before, ledger_before, broker_before = os.getloadavg(), children_cpu_s(), cpu_s(broker)
    result = await timed_drain(config, payments=payments, env=child_env(config))
    result["mode"] = mode
    result["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["ledger_cpu_us_per_payment"] = round((children_cpu_s() - ledger_before) / payments * 1e6, 1)
    result["broker_cpu_us_per_payment"] = round((cpu_s(broker) - broker_before) / payments * 1e6, 1)
    return result


async def measure(plain: Settings, secured: Settings, *, payments: int, runs: int) -> dict:
    """Alternating runs on both brokers, then the medians and their ratio."""
    employer, citizens, merchants = population()
    stream = (account_events(employer, citizens, merchants), payment_stream(payments, hot_share=0.0))
    results: list[dict] = []
    for n in range(runs):
        for mode in MODES:
            base = secured if mode == "sasl_ssl" else plain
            results.append(await one_run(base, mode, n, stream, payments))
            progress = ("mode", "settled_per_s", "ledger_cpu_us_per_payment", "broker_cpu_us_per_payment")
            print(json.dumps({k: results[-1][k] for k in progress}), file=sys.stderr)

    def median(mode: str, figure: str) -> float:
        return statistics.median(r[figure] for r in results if r["mode"] == mode)

    medians = {mode: median(mode, "settled_per_s") for mode in MODES}
    ratio = round(medians["sasl_ssl"] / medians["plaintext"], 3)
    return {
        "payments": payments,
        "runs": results,
        "median_settled_per_s": medians,
        "median_ledger_cpu_us_per_payment": {mode: median(mode, "ledger_cpu_us_per_payment") for mode in MODES},
        "median_broker_cpu_us_per_payment": {mode: median(mode, "broker_cpu_us_per_payment") for mode in MODES},
        "ratio_sasl_over_plaintext": ratio,
        "target": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
    }


async def clean(plain: Settings, keep: bool) -> None:
    if not keep:
        await clean_up(plain)  # every run's database and topics, on either broker (each config knows its own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="runs per broker, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the runs' databases and topics")
    args = parser.parse_args()
    plain = load_settings()
    secured = secured_settings(plain)
    kafka = start_secured_broker(secured)
    try:

        async def session() -> dict:
            try:
                return await measure(plain, secured, payments=args.payments, runs=args.runs)
            finally:
                await clean(plain, args.keep)

        result = asyncio.run(session())
    finally:
        kafka.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run_main(main)
