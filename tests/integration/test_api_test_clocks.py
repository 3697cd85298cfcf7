"""Test clocks through the running API, Kafka, the ledger, the views consumer and the webhook dispatcher
(issue 10, item 7): an authorisation on a clock advanced eight days expires — only then — and its
`payment.expired` webhook reaches a real receiver; captures on a clock are judged by the clock; a clock
only moves forward; another tenant's clock cannot be read, advanced or used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from standardwebhooks import Webhook

from infra.settings import Settings, with_overrides
from schemas.api.test_clocks import CLOCK_EXPIRES_IN_MAX_S
from tests.integration.test_api import (
    HTTP_TIMEOUT_S,
    RunningApi,
    _assert_problem,
    _auth,
    _tenant_key,
    _wallet,
    running_api,
)
from tests.integration.test_api_magic import SCHEDULER_SLACK_S, _settled_until
from tests.integration.test_api_payments import TOP_UP, _available, _msisdn, _pay, _payment, _settle, _top_up
from tests.integration.test_webhooks import Receiver, dispatching, serving, wait_for

AMOUNT: Final = 30_000
WEEK: Final = timedelta(days=7)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's state folder: the dispatcher needs its deployment key to open the secrets."""
    return tmp_path_factory.mktemp("api-clocks-state")


@pytest.fixture(scope="module")
def api(settings: Settings, state: Path) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, state, "api_clocks") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


def _start() -> datetime:
    """A clock's first time: tomorrow at nine, so it is never the wall clock's time."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=9, minute=0, second=0, microsecond=0)


async def _clock(client: httpx.AsyncClient, key: str, at: datetime) -> dict[str, Any]:
    made = await client.post("/v1/test_helpers/test_clocks", json={"frozen_time": at.isoformat()}, headers=_auth(key))
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def _advance(client: httpx.AsyncClient, key: str, clock_id: str, at: datetime) -> httpx.Response:
    return await client.post(
        f"/v1/test_helpers/test_clocks/{clock_id}/advance", json={"frozen_time": at.isoformat()}, headers=_auth(key)
    )


async def _open_on(client: httpx.AsyncClient, key: str, clock_id: str) -> str:
    opened = await client.post("/v1/accounts", json={**_wallet(_msisdn()), "test_clock": clock_id}, headers=_auth(key))
    assert opened.status_code == 201, opened.text
    assert opened.json()["test_clock"] == clock_id
    account_id: str = opened.json()["id"]
    return account_id


async def _authorised_on_clock(
    api: RunningApi, client: httpx.AsyncClient, key: str, clock_id: str, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """A funded payer on the clock, and its week-long authorisation to another account on it, settled."""
    payer, payee = await _open_on(client, key, clock_id), await _open_on(client, key, clock_id)
    await _top_up(client, key, payer)
    await _settle(api.config)
    payment = await _pay(client, key, payer=payer, payee=payee, amount=AMOUNT, capture_method="manual", **extra)
    done = await _settled_until(api, client, key, payment["id"], "requires_capture", within_s=SCHEDULER_SLACK_S)
    return payer, done


async def test_an_authorisation_on_a_clock_advanced_eight_days_expires_and_its_webhook_is_sent(
    api: RunningApi, state: Path, client: httpx.AsyncClient
) -> None:
    """Nothing expires while the clock stands still (the wall clock passing changes nothing); advanced
    eight days, the authorisation is `expired`, the money is released and a signed `payment.expired`
    reaches the receiver."""
    key = await _tenant_key(api.config, "clock shop")
    start = _start()
    clock = await _clock(client, key, start)
    assert clock["status"] == "ready" and datetime.fromisoformat(clock["frozen_time"]) == start
    payer, payment = await _authorised_on_clock(api, client, key, clock["id"])
    assert datetime.fromisoformat(payment["expires_at"]) == start + WEEK  # dated by the clock, not the wall
    await asyncio.sleep(1 + SCHEDULER_SLACK_S / 2)  # a scheduler on wall time would be due by now
    await _settle(api.config)
    assert (await _payment(client, key, payment["id"]))["status"] == "requires_capture"

    config = with_overrides(api.config, state_dir=state, webhook_retry_schedule="1,1")
    async with serving(Receiver(statuses=[200])) as receiver:
        made = await client.post(
            "/v1/webhook_endpoints", json={"url": receiver.url, "events": ["payment.expired"]}, headers=_auth(key)
        )
        assert made.status_code == 201, made.text
        advanced = await _advance(client, key, clock["id"], start + timedelta(days=8))
        assert advanced.status_code == 200, advanced.text
        assert datetime.fromisoformat(advanced.json()["frozen_time"]) == start + timedelta(days=8)
        expired = await _settled_until(api, client, key, payment["id"], "expired", within_s=2 * SCHEDULER_SLACK_S)
        async with dispatching(config):

            async def delivered() -> bool:
                return len(receiver.received) >= 1

            await wait_for(delivered, "the payment.expired webhook")
    assert expired["amount_captured"] == 0
    assert await _available(client, key, payer) == TOP_UP
    [(body, headers, _)] = receiver.received
    event = Webhook(made.json()["secret"]).verify(body, headers)
    assert event["type"] == "payment.expired" and event["data"]["id"] == payment["id"]
    assert (await client.get(f"/v1/test_helpers/test_clocks/{clock['id']}", headers=_auth(key))).json()[
        "status"
    ] == "ready"


async def test_a_capture_on_a_clock_is_judged_by_the_clock_not_the_wall(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A clock frozen twenty days ago and a one-day authorisation: by the wall clock it expired long ago,
    by its clock it has not. The capture is dated by the clock, sent as the clock's producer, and
    succeeds (dated by the wall it would be refused as expired)."""
    key = await _tenant_key(api.config, "clock capture")
    clock = await _clock(client, key, _start() - timedelta(days=21))
    payer, payment = await _authorised_on_clock(api, client, key, clock["id"], expires_in=86_400)
    assert datetime.fromisoformat(payment["expires_at"]) < datetime.now(UTC)
    captured = await client.post(f"/v1/payments/{payment['id']}/capture", headers=_auth(key))
    assert captured.status_code == 202, captured.text
    done = await _settled_until(api, client, key, payment["id"], "succeeded", within_s=SCHEDULER_SLACK_S)
    assert done["amount_captured"] == AMOUNT
    assert await _available(client, key, payer) == TOP_UP - AMOUNT


async def test_a_clock_only_moves_forward_and_bounds_authorisations(api: RunningApi, client: httpx.AsyncClient) -> None:
    key = await _tenant_key(api.config, "clock bounds")
    start = _start()
    clock = await _clock(client, key, start)
    _assert_problem(await _advance(client, key, clock["id"], start), 422, "test_clock_not_forward", "frozen_time")
    _assert_problem(
        await _advance(client, key, clock["id"], start - timedelta(hours=1)),
        422,
        "test_clock_not_forward",
        "frozen_time",
    )
    payer, payee = await _open_on(client, key, clock["id"]), await _open_on(client, key, clock["id"])
    too_long = await client.post(
        "/v1/payments",
        json={"payer": payer, "payee": payee, "amount": 1, "capture_method": "manual",
              "expires_in": CLOCK_EXPIRES_IN_MAX_S + 1},
        headers=_auth(key),
    )  # fmt: skip
    _assert_problem(too_long, 422, "invalid_parameter", "expires_in")
    far = await client.post(
        "/v1/test_helpers/test_clocks", json={"frozen_time": "1999-12-31T00:00:00Z"}, headers=_auth(key)
    )
    _assert_problem(far, 422, "invalid_parameter", "frozen_time")
    naive = await client.post(
        "/v1/test_helpers/test_clocks", json={"frozen_time": "2027-01-01T00:00:00"}, headers=_auth(key)
    )
    assert naive.status_code == 422, naive.text


async def test_another_tenant_s_clock_is_404_everywhere(api: RunningApi, client: httpx.AsyncClient) -> None:
    owner, other = await _tenant_key(api.config, "clock owner"), await _tenant_key(api.config, "clock other")
    clock = await _clock(client, owner, _start())
    read = await client.get(f"/v1/test_helpers/test_clocks/{clock['id']}", headers=_auth(other))
    _assert_problem(read, 404, "not_found", "test_clock")
    _assert_problem(await _advance(client, other, clock["id"], _start() + WEEK), 404, "not_found", "test_clock")
    opened = await client.post(
        "/v1/accounts", json={**_wallet(_msisdn()), "test_clock": clock["id"]}, headers=_auth(other)
    )
    _assert_problem(opened, 404, "not_found", "test_clock")
    unmoved = await client.get(f"/v1/test_helpers/test_clocks/{clock['id']}", headers=_auth(owner))
    assert datetime.fromisoformat(unmoved.json()["frozen_time"]) == _start()
