"""Issue 10, item 6 on the real stack (the API, ledger, views consumer and webhook dispatcher):
`kpsandbox fixtures docs/fixtures/*.toml` runs the documented scenarios as a CLI process — a payment
that succeeds, an authorisation that expires once its test clock moves eight days — and exits 1 on an
expectation that does not hold; `kpsandbox listen --forward-to` makes a temporary endpoint whose
secret verifies what a real receiver gets, shows the delivery, and deletes the endpoint on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from standardwebhooks import Webhook

from infra.settings import Settings, with_overrides
from producers.api_client import ApiClient
from producers.triggers import run_trigger
from tests.integration.test_api import HTTP_TIMEOUT_S, REPO, RunningApi, _auth, _tenant_key, running_api
from tests.integration.test_webhook_resend import whole_sandbox
from tests.integration.test_webhooks import Receiver, dispatching, serving, wait_for

CLI_TIMEOUT_S: Final = 150.0  # both example fixtures, each step bounded by the runner's own waits
LINE_WAIT_S: Final = 30.0  # the longest the test waits for one line of `listen`'s output
LISTEN_BOUND_S: Final = 120  # `listen --duration`: the safety bound; the test stops it with SIGINT first
EXAMPLES: Final = sorted(str(path.relative_to(REPO)) for path in (REPO / "docs" / "fixtures").glob("*.toml"))


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's state folder: the dispatcher needs its deployment key to open the secrets."""
    return tmp_path_factory.mktemp("api-cli-listen-state")


@pytest.fixture(scope="module")
def api(settings: Settings, state: Path) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, state, "clilisten") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


def _cli_env(api: RunningApi, key: str) -> dict[str, str]:
    return dict(os.environ, KPSANDBOX_API_KEY=key, KPSANDBOX_API_URL=api.url, COLUMNS="200", PYTHONUNBUFFERED="1")


async def _kpsandbox(env: dict[str, str], *args: str) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kpsandbox", *args,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    return process.returncode, output.decode()


async def test_the_documented_fixtures_run_and_a_failed_expectation_exits_1(
    api: RunningApi, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Both files under docs/fixtures pass (exit 0; the payment `succeeded`, the authorisation `expired`
    after the clock moved eight days); a file expecting what does not happen exits 1 and says so."""
    assert len(EXAMPLES) >= 2, EXAMPLES
    key = await _tenant_key(api.config, "fixture shop")
    env = _cli_env(api, key)
    failing = tmp_path / "wrong.toml"
    failing.write_text(
        "[[step]]\nopen_account = {name = 'a'}\n[[step]]\nexpect = {object = 'a', status = 'closed', within_s = 1}\n"
        "[[step]]\nopen_account = {name = 'never'}\n"
    )
    async with whole_sandbox(api.config):
        status, text = await _kpsandbox(env, "fixtures", *EXAMPLES)
        failed_status, failed_text = await _kpsandbox(env, "fixtures", str(failing))
    assert status == 0, text
    assert re.search(r"step  4 pay lunch: payment pay_\w+ succeeded amount 25000", text), text
    assert re.search(r"step  7 advance_clock: test_clock clk_\w+ ready at ", text), text
    expired = r"step  8 expect: payment pay_\w+ expired amount 30000 \[status='expired', amount_captured=0\] — ok"
    assert re.search(expired, text), text
    assert "all expectations held (2 file(s))" in text, text
    assert failed_status == 1, failed_text
    assert "FAILED: status is 'open', expected 'closed'" in failed_text and "1 later step(s) not run" in failed_text
    payments = (await client.get("/v1/payments", headers=_auth(key))).json()["data"]
    assert sorted(p["status"] for p in payments) == ["expired", "succeeded"], payments


async def _line_matching(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> re.Match[str]:
    """Reads `listen`'s output until a line matches `pattern` (within LINE_WAIT_S)."""
    deadline = time.monotonic() + LINE_WAIT_S
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(stream.readline(), LINE_WAIT_S)).decode()
        assert line, "listen ended early:\n" + "".join(seen)
        seen.append(line)
        if found := re.search(pattern, line):
            return found
    raise AssertionError(f"no line matching {pattern!r} in:\n" + "".join(seen))


async def test_listen_forwards_a_triggered_event_signed_and_deletes_its_endpoint(
    api: RunningApi, state: Path, client: httpx.AsyncClient
) -> None:
    """`listen --forward-to <receiver> --events payment.succeeded` while `payment.succeeded` is triggered:
    the receiver gets the event once, verified with the secret listen printed; listen's output shows the
    attempt (200); after Ctrl-C it prints the summary and the endpoint is gone (404)."""
    key = await _tenant_key(api.config, "listen shop")
    config = with_overrides(api.config, state_dir=state, webhook_retry_schedule="1")
    seen: list[str] = []
    async with serving(Receiver(statuses=[200])) as receiver, whole_sandbox(api.config), dispatching(config):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kpsandbox", "listen", "--forward-to", receiver.url,
            "--events", "payment.succeeded", "--duration", str(LISTEN_BOUND_S),
            cwd=REPO, env=_cli_env(api, key), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        endpoint_id = (await _line_matching(process.stdout, r"temporary endpoint: (we_\w+)", seen)).group(1)
        secret = (await _line_matching(process.stdout, r"signing secret: +(whsec_\S+)", seen)).group(1)
        async with ApiClient(api.url, key) as sandbox:
            triggered = await run_trigger(sandbox, "payment.succeeded", {})
        assert not triggered.missing, triggered
        [event] = [e for e in triggered.events if e.type == "payment.succeeded"]

        async def received() -> bool:
            return len(receiver.received) >= 1

        await wait_for(received, "the forwarded event")
        await _line_matching(process.stdout, rf"payment\.succeeded +{event.id} +attempt 1 +200 ", seen)
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), LINE_WAIT_S)
    output = "".join(seen) + rest.decode()
    assert process.returncode == 0, output
    assert (
        f"1 deliveries to {receiver.url} (1 delivered, 0 failed, 0 pending); endpoint {endpoint_id} deleted" in output
    )
    [(body, headers, _)] = receiver.received
    verified = Webhook(secret).verify(body, headers)
    assert verified["id"] == event.id and verified["type"] == "payment.succeeded"
    gone = await client.get(f"/v1/webhook_endpoints/{endpoint_id}", headers=_auth(key))
    assert gone.status_code == 404, gone.text
