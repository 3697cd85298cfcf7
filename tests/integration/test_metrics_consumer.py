"""The metrics consumer on real Kafka and PostgreSQL: figures, restarts, exporter output."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE

import pytest

from consumers.ledger.consumer import Settler
from consumers.metrics.consumer import MetricsConsumer
from consumers.metrics.figures import figures
from infra.errors import SandboxError
from infra.settings import Settings
from tests.conftest import REPO_ROOT
from tests.integration.metrics_support import Pipeline, build_pipeline, current, run_until_drained, scrape

STOP_AFTER_RECORDS = 5_000
STOP_WAIT_S_MAX = 60.0
PROCESS_WAIT_S_MAX = 60.0


@pytest.fixture(scope="module")
async def pipeline(settings: Settings) -> Pipeline:
    """One simulated and settled stream shared by this module's tests."""
    return await build_pipeline(settings)


async def _full_run(config: Settings, group: str) -> MetricsConsumer:
    consumer = MetricsConsumer(config, group=group)
    await consumer.run(until_idle=True, serve_http=False)
    return consumer


async def test_figures_agree_with_the_simulation(pipeline: Pipeline) -> None:
    """Cash payments, accounts and rejections seen by the consumer match what the simulation emitted."""
    consumer = await _full_run(pipeline.settings, "m-agree")
    f = figures(consumer.aggregator)
    stats = pipeline.sim.stats
    cash = sum(c for (instrument, *_), (c, _) in f.payments.items() if instrument == "cash")
    assert cash == stats.cash_count
    digital = sum(c for (instrument, *_), (c, _) in f.payments.items() if instrument == "digital")
    assert 0 < digital <= stats.events_by_type["payment.requested"]
    citizens_opened = sum(n for (d, g), n in f.adults_with_account.items() if d != "all" and g == "all")
    assert 0 < citizens_opened <= stats.events_by_type["account.opened"]
    assert 0 < f.inclusion[("all", "all")] < 1
    assert 0 < f.digital_share[("count", "all")] < 1
    assert sum(f.active_users.values()) > 0
    assert f.simulated_time_s > 0
    assert sum(f.latency_buckets) > 0  # requests were read before their outcomes


async def test_restart_mid_stream_gives_the_same_figures(pipeline: Pipeline) -> None:
    """Stopping after a few thousand records and starting again ends with the figures of one run."""
    reference = current(await _full_run(pipeline.settings, "m-one-run"))
    first = MetricsConsumer(pipeline.settings, group="m-restart")
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop=stop, serve_http=False))
    for _ in range(int(STOP_WAIT_S_MAX / 0.05)):
        if first.summary.records >= STOP_AFTER_RECORDS or task.done():
            break
        await asyncio.sleep(0.05)
    stop.set()
    summary = await task
    assert 0 < summary.records < sum(pipeline.sim.stats.events_by_type.values()) + 2_000  # really stopped early
    second = await _full_run(pipeline.settings, "m-restart")
    assert second.summary.resumed
    assert current(second) == reference


async def test_cancel_then_restart_gives_the_same_figures(pipeline: Pipeline) -> None:
    """Cancelling the task (as Ctrl-C does) saves the state; the next run ends where one run ends."""
    reference = current(await _full_run(pipeline.settings, "m-cancel-ref"))
    consumer = MetricsConsumer(pipeline.settings, group="m-cancel")
    task, _ = await run_until_drained(consumer)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    again = await _full_run(pipeline.settings, "m-cancel")
    assert again.summary.resumed and again.summary.records == 0
    assert current(again) == reference


async def test_live_metrics_pass_promtool_check_metrics(pipeline: Pipeline) -> None:
    """The exporter's live /metrics text is accepted by `promtool check metrics` without warnings."""
    consumer = MetricsConsumer(pipeline.settings, group="m-promtool")
    task, stop = await run_until_drained(consumer, serve_http=True)
    try:
        text = await asyncio.to_thread(scrape, pipeline.settings.metrics_port)
    finally:
        stop.set()
        await task
    assert 'kpsandbox_payments_total{district="Peshawar"' in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked


async def test_second_consumer_of_a_group_is_refused(pipeline: Pipeline) -> None:
    """Two metrics consumers of one group would count everything twice: the second one is refused."""
    consumer = MetricsConsumer(pipeline.settings, group="m-lock")
    task, stop = await run_until_drained(consumer)
    try:
        with pytest.raises(SandboxError, match="another metrics consumer"):
            await MetricsConsumer(pipeline.settings, group="m-lock").run(until_idle=True, serve_http=False)
    finally:
        stop.set()
        await task


async def test_sigint_stops_cleanly_and_saves(pipeline: Pipeline) -> None:
    """Ctrl-C (SIGINT) on `python -m consumers.metrics` exits 0 having saved; a rerun resumes with 0 to read."""
    config = pipeline.settings
    env = os.environ | {
        "KPSANDBOX_TOPIC_PREFIX": config.topic_prefix,
        "KPSANDBOX_DATABASE_URL": config.dsn,
        "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KPSANDBOX_METRICS_PORT": str(config.metrics_port),
        "KPSANDBOX_METRICS_GROUP": "m-sigint",
    }
    command = [sys.executable, "-m", "consumers.metrics"]
    process = await asyncio.create_subprocess_exec(*command, env=env, cwd=REPO_ROOT, stdout=PIPE, stderr=PIPE)
    try:
        for _ in range(int(PROCESS_WAIT_S_MAX / 0.25)):
            await asyncio.sleep(0.25)
            text = await asyncio.to_thread(_try_scrape, config.metrics_port)
            if 'kpsandbox_metrics_events_total{result="counted",topic="kp.cash.v1"} 0.0' not in text and text:
                break
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_WAIT_S_MAX)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert b"state saved" in out
    again = await asyncio.create_subprocess_exec(*command, "--until-idle", env=env, cwd=REPO_ROOT, stdout=PIPE)
    rerun, _ = await asyncio.wait_for(again.communicate(), PROCESS_WAIT_S_MAX)
    assert again.returncode == 0 and b"resumed" in rerun
    whole = (await _full_run(config, "m-sigint-ref")).summary.records
    assert _records(out) + _records(rerun) == whole  # nothing read twice, nothing skipped


def _try_scrape(port: int) -> str:
    try:
        return scrape(port)
    except OSError:
        return ""


def _records(out: bytes) -> int:
    return int(out.split(b"records read")[0].split()[-1])


async def test_beside_the_ledger_in_one_process(settings: Settings) -> None:
    """Metrics running in the ledger's process while it settles end with the figures of a later full run."""
    config = await build_pipeline(settings, settle=False)
    stop = asyncio.Event()
    live = MetricsConsumer(config.settings, group="m-beside")
    task = asyncio.create_task(live.run(stop=stop, serve_http=False))
    try:
        await Settler(config.settings).run(until_idle=True)
        assert await live.caught_up(timeout_s=STOP_WAIT_S_MAX)
    finally:
        stop.set()
        await task
    assert current(live) == current(await _full_run(config.settings, "m-beside-after"))
    assert sum(c for (i, *_), (c, _) in figures(live.aggregator).payments.items() if i == "digital") > 0
