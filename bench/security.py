"""Ledger settled/s over SASL_SSL against PLAINTEXT, in one run (issue 14, "Speed": ≥ 0.8×).

    .venv/bin/python bench/security.py [--payments 100000] [--runs 2] [--warm-up-payments N]
                                       [--raw-messages 100000] [--keep]

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

Each run also records CPU per payment of the ledger process and of its broker, which a busy
machine disturbs less than settled/s (the dev broker's figure counts whatever else uses it too).
One uncounted warm-up run per broker comes first: the secured broker was just started, and a new
JVM spends its first minutes compiling (JIT). Raw aiokafka produce → consume runs
(bench/kafka_baseline.py, no ledger) follow, to show what TLS and SASL cost a client and the
broker per message. Prints one JSON object: every run, the medians, the ratio sasl ÷ plaintext
of the medians and the median of the pairs' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.kafka_baseline import measure as raw_measure
from bench.ledger import REPO, account_events, clean_up, payment_stream, population, preload, timed_drain
from infra.errors import SandboxError, run_main
from infra.kafka_principals import LEDGER_GROUP, apply_service_acls
from infra.local import procs
from infra.local.kafka import KafkaService
from infra.settings import Settings, load_settings, settings_env, with_overrides

SECURED_PORTS: Final = {"kafka_port": 19192, "kafka_controller_port": 19193}  # never the tests' 39xxx
STATE_SUBDIR: Final = "bench-sasl"
TARGET_RATIO: Final = 0.8
MODES: Final = ("plaintext", "sasl_ssl")
WARM_UP_RUN: Final = 99  # the warm-up runs' number in their databases' and prefixes' names


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
    """The ledger child's environment: exactly `config` (local mode), none of ours KPSANDBOX_*.

    The consumer group is the run's own (`kp-ledger-bench-<prefix>`, inside kp-ledger's prefixed
    group ACL): other benchmarks may run ledgers on the dev broker meanwhile, and in one group their
    rebalances stall this run, or leave it with no partition, which `--until-idle` takes for done.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("KPSANDBOX_")}
    group = f"{LEDGER_GROUP}-bench-{config.topic_prefix.rstrip('.')}"
    return env | settings_env(config) | {"KPSANDBOX_LEDGER_GROUP": group, "PYTHONPATH": str(REPO)}


def start_secured_broker(kafka: KafkaService) -> None:
    """Prepares (CA, principals, storage: once per state folder) and starts the secured broker."""
    kafka.prepare()
    kafka.start()
    kafka.wait_healthy()


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


async def warm_up(plain: Settings, secured: Settings, payments: int) -> None:
    """One uncounted run on each broker: the secured broker was just started (its JIT, its
    __consumer_offsets topic and the TLS and SCRAM paths are cold) while the dev stack's may have
    served for hours."""
    funder, citizens, merchants = population()
    stream = (account_events(funder, citizens, merchants), payment_stream(payments, hot_share=0.0))
    for mode in MODES:
        result = await one_run(secured if mode == "sasl_ssl" else plain, mode, WARM_UP_RUN, stream, payments)
        print(json.dumps({"warm_up": mode, "settled_per_s": result["settled_per_s"]}), file=sys.stderr)


async def measure(plain: Settings, secured: Settings, *, payments: int, runs: int, warm_up_payments: int) -> dict:
    """Alternating runs on both brokers, then the medians and their ratio."""
    if warm_up_payments:
        await warm_up(plain, secured, warm_up_payments)
    funder, citizens, merchants = population()
    stream = (account_events(funder, citizens, merchants), payment_stream(payments, hot_share=0.0))
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
    speeds = {mode: [r["settled_per_s"] for r in results if r["mode"] == mode] for mode in MODES}
    pairs = [round(sasl / plain, 3) for plain, sasl in zip(speeds["plaintext"], speeds["sasl_ssl"], strict=True)]
    return {
        "payments": payments,
        "warm_up_payments": warm_up_payments,
        "runs": results,
        "median_settled_per_s": medians,
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
        "median_ledger_cpu_us_per_payment": {mode: median(mode, "ledger_cpu_us_per_payment") for mode in MODES},
        "median_broker_cpu_us_per_payment": {mode: median(mode, "broker_cpu_us_per_payment") for mode in MODES},
        "ratio_sasl_over_plaintext": ratio,
        "target": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
    }


async def raw_run(base: Settings, mode: str, n: int, messages: int) -> dict:
    """bench/kafka_baseline.py on `base`'s broker as kp-admin (no ledger, no PostgreSQL): what TLS
    and SASL cost a plain aiokafka client and the broker per message."""
    topic = f"{base.topic_prefix}bench.raw.{mode}{n}.{uuid.uuid4().hex[:6]}"
    broker = broker_pid(base)
    client_before, broker_before = time.process_time(), cpu_s(broker)
    raw = await raw_measure(base, topic, messages)
    return {
        "mode": mode,
        "produce_msgs_per_s": round(raw.produce_msgs_per_s),
        "consume_msgs_per_s": round(raw.consume_msgs_per_s),
        "client_cpu_us_per_message": round((time.process_time() - client_before) / messages * 1e6, 1),
        "broker_cpu_us_per_message": round((cpu_s(broker) - broker_before) / messages * 1e6, 1),
    }


async def raw_pairs(plain: Settings, secured: Settings, *, messages: int, runs: int) -> list[dict]:
    """Alternating raw produce → consume runs on both brokers (bench/kafka_baseline.py)."""
    results = []
    for n in range(runs):
        for mode in MODES:
            results.append(await raw_run(secured if mode == "sasl_ssl" else plain, mode, n, messages))
            print(json.dumps({"raw": results[-1]}), file=sys.stderr)
    return results


async def session(plain: Settings, secured: Settings, args: argparse.Namespace) -> dict:
    """The measurement, then every run's database and topics dropped (unless --keep), on either
    broker (each run's settings know their own), while the secured broker still runs."""
    try:
        result = await measure(
            plain, secured, payments=args.payments, runs=args.runs, warm_up_payments=args.warm_up_payments
        )
        if args.raw_messages:
            result["raw_kafka"] = await raw_pairs(plain, secured, messages=args.raw_messages, runs=args.runs)
        return result
    finally:
        if not args.keep:
            await clean_up(plain)


def main() -> None:
    """Starts the secured broker, measures, cleans up, stops it, prints the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="runs per broker, alternating")
    parser.add_argument(
        "--warm-up-payments",
        type=int,
        default=None,
        help="an uncounted run on each broker first (default: --payments; 0: none)",
    )
    parser.add_argument(
        "--raw-messages", type=int, default=100_000, help="then raw aiokafka produce → consume per broker (0: none)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the runs' databases and topics")
    args = parser.parse_args()
    if args.warm_up_payments is None:
        args.warm_up_payments = args.payments
    plain = load_settings()
    secured = secured_settings(plain)
    kafka = KafkaService(secured)
    try:
        start_secured_broker(kafka)
        result = asyncio.run(session(plain, secured, args))
    finally:
        kafka.stop()  # nothing of the bench's is left listening
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run_main(main)
