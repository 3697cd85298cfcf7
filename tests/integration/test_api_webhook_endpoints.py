"""Webhook endpoints through a real uvicorn server (`python -m producers.api`) on the test stack's PostgreSQL
(issue 10, item 1): create answers the secret once, reads show its last 4 characters, update and disable,
rotation keeps the previous secret 24 h, delete; secrets are stored sealed (and open with the deployment key),
never logged; tenants stay apart; bad URLs and events are 422 naming the param; at most 16 per tenant."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import httpx
import pytest

from infra.sealed_secrets import unseal
from infra.secrets import KEY_FILE, SECRETS_FOLDER
from infra.settings import Settings
from producers.api.webhook_endpoints import ENDPOINTS_PER_TENANT_MAX
from schemas.webhooks import WEBHOOK_EVENT_TYPES
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _assert_problem, _auth, _tenant_key, running_api

PATH: Final = "/v1/webhook_endpoints"
URL: Final = "http://127.0.0.1:9/unreachable/hooks"  # the discard port: nothing answers, and that is fine
ENDPOINT_ID: Final = re.compile(r"we_[0-9a-f]{32}")
SECRET: Final = re.compile(r"whsec_[A-Za-z0-9+/]{32}")
ENDPOINT_KEYS: Final = {
    "object",
    "id",
    "url",
    "events",
    "status",
    "secret_last4",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
}
CLOCK_SLACK: Final = timedelta(minutes=2)  # between this machine's clock and PostgreSQL's `now()`
CONCURRENT_CREATES: Final = ENDPOINTS_PER_TENANT_MAX + 4
SECRETS_SEEN: list[str] = []  # every secret the API answered in this module: none may reach its log


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-webhook-state"), "api_webhook") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _create(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post(PATH, json={"url": URL, "events": ["payment.succeeded"], **body}, headers=_auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert set(created) == ENDPOINT_KEYS | {"secret"}, created
    assert ENDPOINT_ID.fullmatch(created["id"]) and SECRET.fullmatch(created["secret"]), created
    assert created["secret_last4"] == created["secret"][-4:]
    SECRETS_SEEN.append(created["secret"])
    return created


async def _get(client: httpx.AsyncClient, key: str, endpoint_id: str) -> dict[str, Any]:
    response = await client.get(f"{PATH}/{endpoint_id}", headers=_auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENDPOINT_KEYS, body  # never the secret
    return body


async def _update(client: httpx.AsyncClient, key: str, endpoint_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{PATH}/{endpoint_id}", json=body, headers=_auth(key))
    assert response.status_code == 200, response.text
    updated: dict[str, Any] = response.json()
    return updated


async def _stored(config: Settings, endpoint_id: str) -> asyncpg.Record:
    connection = await asyncpg.connect(config.dsn)
    try:
        row = await connection.fetchrow("SELECT * FROM api_webhook_endpoints WHERE id = $1", endpoint_id)
    finally:
        await connection.close()
    assert row is not None
    return row


def _deployment_key(api: RunningApi) -> bytes:
    return (api.log.parent / SECRETS_FOLDER / KEY_FILE).read_bytes()  # the API's KPSANDBOX_STATE_DIR


async def test_create_answers_the_secret_once_and_stores_it_sealed(api: RunningApi, client: httpx.AsyncClient) -> None:
    """201 with `whsec_…` (24 bytes), enabled, events once each; GET and the list show only its last 4
    characters; the row holds it sealed — not in the clear — and it opens with the deployment key.
    The unreachable URL is accepted: reachability is for deliveries to find out."""
    key = await _tenant_key(api.config, "hooks")
    created = await _create(client, key, events=["payment.succeeded", "refund.failed", "payment.succeeded"])
    assert created["status"] == "enabled" and created["url"] == URL and created["object"] == "webhook_endpoint"
    assert created["events"] == ["payment.succeeded", "refund.failed"]
    assert created["previous_secret_expires_at"] is None

    read = await _get(client, key, created["id"])
    assert read == {name: value for name, value in created.items() if name != "secret"}
    listed = await client.get(PATH, headers=_auth(key))
    assert listed.status_code == 200 and listed.json()["data"] == [read], listed.text

    row = await _stored(api.config, created["id"])
    secret = created["secret"]
    assert secret.encode() not in bytes(row["secret_sealed"]) and secret[6:].encode() not in bytes(row["secret_sealed"])
    assert all(secret not in str(value) for value in row.values())
    assert unseal(_deployment_key(api), bytes(row["secret_sealed"]), bound_to=created["id"]) == secret


async def test_update_changes_url_events_and_status(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Each field alone changes only itself; `disabled` true → disabled, false → enabled; `{}` changes nothing."""
    key = await _tenant_key(api.config, "updater")
    endpoint = await _create(client, key)
    endpoint_id = endpoint["id"]
    moved = await _update(client, key, endpoint_id, url="https://example.com/kp/hooks")
    assert moved["url"] == "https://example.com/kp/hooks" and moved["events"] == ["payment.succeeded"]
    assert moved["updated_at"] > endpoint["updated_at"]
    more = await _update(client, key, endpoint_id, events=list(WEBHOOK_EVENT_TYPES))
    assert more["events"] == list(WEBHOOK_EVENT_TYPES) and more["url"] == "https://example.com/kp/hooks"
    assert (await _update(client, key, endpoint_id, disabled=True))["status"] == "disabled"
    assert (await _get(client, key, endpoint_id))["status"] == "disabled"
    unchanged = await _update(client, key, endpoint_id)
    assert unchanged["status"] == "disabled" and unchanged["events"] == list(WEBHOOK_EVENT_TYPES)
    assert (await _update(client, key, endpoint_id, disabled=False))["status"] == "enabled"
    assert (await _get(client, key, endpoint_id))["secret_last4"] == endpoint["secret_last4"]


async def test_rotation_keeps_the_previous_secret_for_24_hours(api: RunningApi, client: httpx.AsyncClient) -> None:
    """rotate_secret answers a new secret; the old one is kept sealed as the previous secret until 24 h
    from now; a second rotation makes the second secret the previous one."""
    key = await _tenant_key(api.config, "rotator")
    endpoint = await _create(client, key)
    rotated = await client.post(f"{PATH}/{endpoint['id']}/rotate_secret", headers=_auth(key))
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    SECRETS_SEEN.append(second["secret"])
    assert SECRET.fullmatch(second["secret"]) and second["secret"] != endpoint["secret"]
    assert second["secret_last4"] == second["secret"][-4:] == (await _get(client, key, endpoint["id"]))["secret_last4"]
    expires = datetime.fromisoformat(second["previous_secret_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < CLOCK_SLACK, expires

    deployment_key = _deployment_key(api)
    row = await _stored(api.config, endpoint["id"])
    assert unseal(deployment_key, bytes(row["secret_sealed"]), bound_to=endpoint["id"]) == second["secret"]
    assert unseal(deployment_key, bytes(row["previous_secret_sealed"]), bound_to=endpoint["id"]) == endpoint["secret"]

    third = (await client.post(f"{PATH}/{endpoint['id']}/rotate_secret", headers=_auth(key))).json()
    SECRETS_SEEN.append(third["secret"])
    row = await _stored(api.config, endpoint["id"])
    assert unseal(deployment_key, bytes(row["previous_secret_sealed"]), bound_to=endpoint["id"]) == second["secret"]


async def test_delete_removes_the_endpoint(api: RunningApi, client: httpx.AsyncClient) -> None:
    """DELETE answers `deleted: true`; afterwards GET, update, rotate and a second DELETE are 404."""
    key = await _tenant_key(api.config, "deleter")
    endpoint_id = (await _create(client, key))["id"]
    deleted = await client.delete(f"{PATH}/{endpoint_id}", headers=_auth(key))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"object": "webhook_endpoint", "id": endpoint_id, "deleted": True}
    for response in (
        await client.get(f"{PATH}/{endpoint_id}", headers=_auth(key)),
        await client.post(f"{PATH}/{endpoint_id}", json={"disabled": True}, headers=_auth(key)),
        await client.post(f"{PATH}/{endpoint_id}/rotate_secret", headers=_auth(key)),
        await client.delete(f"{PATH}/{endpoint_id}", headers=_auth(key)),
    ):
        _assert_problem(response, 404, "not_found", "endpoint_id")


async def test_another_tenants_endpoint_is_404_and_unlisted(api: RunningApi, client: httpx.AsyncClient) -> None:
    """A stranger cannot read, update, rotate or delete an endpoint, nor see it listed; it stays unchanged."""
    owner, stranger = await _tenant_key(api.config, "owner"), await _tenant_key(api.config, "stranger")
    endpoint = await _create(client, owner)
    path = f"{PATH}/{endpoint['id']}"
    for response in (
        await client.get(path, headers=_auth(stranger)),
        await client.post(path, json={"disabled": True}, headers=_auth(stranger)),
        await client.post(f"{path}/rotate_secret", headers=_auth(stranger)),
        await client.delete(path, headers=_auth(stranger)),
    ):
        _assert_problem(response, 404, "not_found", "endpoint_id")
    assert (await client.get(PATH, headers=_auth(stranger))).json()["data"] == []
    after = await _get(client, owner, endpoint["id"])
    assert after["status"] == "enabled" and after["secret_last4"] == endpoint["secret_last4"]
    _assert_problem(await client.get(PATH), 401, "unauthorized", "Authorization")


async def test_bad_urls_and_events_are_422_naming_the_param(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Not http(s), credentials, over 2 048 characters, unknown or no events, a missing or unknown field:
    422 problems naming the parameter, on create and on update; nothing is stored."""
    key = await _tenant_key(api.config, "careless hooks")
    good: dict[str, Any] = {"url": URL, "events": ["payment.succeeded"]}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**good, "url": "ftp://example.com/hooks"}, "invalid_parameter", "url"),
        ({**good, "url": "example.com/hooks"}, "invalid_parameter", "url"),
        ({**good, "url": "https://user:secret@example.com/hooks"}, "invalid_parameter", "url"),
        ({**good, "url": "https://example.com/" + "p" * 2048}, "invalid_parameter", "url"),
        ({**good, "url": 42}, "invalid_parameter", "url"),
        ({**good, "events": ["payment.succeeded", "payment.exploded"]}, "invalid_parameter", "events.1"),
        ({**good, "events": []}, "invalid_parameter", "events"),
        ({**good, "events": "payment.succeeded"}, "invalid_parameter", "events"),
        ({"url": URL}, "parameter_missing", "events"),
        ({**good, "secret": "whsec_mine"}, "parameter_unexpected", "secret"),
    ]
    for body, code, param in cases:
        problem = _assert_problem(await client.post(PATH, json=body, headers=_auth(key)), 422, code, param)
        assert "secret" not in body or "whsec_mine" not in problem["detail"]
    assert (await client.get(PATH, headers=_auth(key))).json()["data"] == []

    endpoint_id = (await _create(client, key))["id"]
    for body, param in (({"url": "ftp://x"}, "url"), ({"events": []}, "events"), ({"disabled": "yes"}, "disabled")):
        response = await client.post(f"{PATH}/{endpoint_id}", json=body, headers=_auth(key))
        _assert_problem(response, 422, "invalid_parameter", param)
    assert (await _get(client, key, endpoint_id))["url"] == URL


async def test_listing_pages_newest_first(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Three endpoints two at a time: newest first, a cursor to the rest, no item twice; a cursor of
    another listing is 422 on starting_after."""
    key = await _tenant_key(api.config, "lister")
    made = [(await _create(client, key))["id"] for _ in range(3)]
    first = (await client.get(PATH, params={"limit": 2}, headers=_auth(key))).json()
    assert first["has_more"] and [item["id"] for item in first["data"]] == made[:0:-1]
    rest = (
        await client.get(PATH, params={"limit": 2, "starting_after": first["next_cursor"]}, headers=_auth(key))
    ).json()
    assert not rest["has_more"] and rest["next_cursor"] is None and [item["id"] for item in rest["data"]] == made[:1]
    accounts_cursor = "YWNjb3VudHN8MHxhY2NfMDAwMDAwMDA"  # base64url of "accounts|0|acc_00000000"
    wrong = await client.get(PATH, params={"starting_after": accounts_cursor}, headers=_auth(key))
    _assert_problem(wrong, 422, "invalid_parameter", "starting_after")


async def test_a_tenant_has_at_most_16_endpoints_even_when_racing(api: RunningApi, client: httpx.AsyncClient) -> None:
    """20 concurrent creates: exactly 16 are made, the others are 409 webhook_endpoints_limit."""
    key = await _tenant_key(api.config, "greedy")
    body = {"url": URL, "events": ["account.opened"]}
    responses = await asyncio.gather(
        *(client.post(PATH, json=body, headers=_auth(key)) for _ in range(CONCURRENT_CREATES))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * ENDPOINTS_PER_TENANT_MAX + [409] * (CONCURRENT_CREATES - ENDPOINTS_PER_TENANT_MAX)
    SECRETS_SEEN.extend(response.json()["secret"] for response in responses if response.status_code == 201)
    refused = next(response for response in responses if response.status_code == 409)
    _assert_problem(refused, 409, "webhook_endpoints_limit")
    listed = await client.get(PATH, params={"limit": 100}, headers=_auth(key))
    assert len(listed.json()["data"]) == ENDPOINTS_PER_TENANT_MAX


async def test_an_idempotency_key_replays_the_same_endpoint_and_secret(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """The same create with the same Idempotency-Key makes one endpoint and answers its secret again."""
    key = await _tenant_key(api.config, "retrier")
    headers = {**_auth(key), "Idempotency-Key": "create-hook-1"}
    body = {"url": URL, "events": ["top_up.succeeded"]}
    first = await client.post(PATH, json=body, headers=headers)
    again = await client.post(PATH, json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    SECRETS_SEEN.append(first.json()["secret"])
    assert len((await client.get(PATH, headers=_auth(key))).json()["data"]) == 1


async def test_no_secret_reaches_the_api_log(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Every secret answered in this module (creates and rotations: this test makes one of each, the
    others add theirs when they ran first), without its prefix, is absent from the API's log."""
    key = await _tenant_key(api.config, "quiet")
    endpoint = await _create(client, key)
    rotated = await client.post(f"{PATH}/{endpoint['id']}/rotate_secret", headers=_auth(key))
    SECRETS_SEEN.append(rotated.json()["secret"])
    await client.get("/readyz")  # one more request, so the log has been written past the others
    logged = api.log.read_text()
    assert "/v1/webhook_endpoints" in logged, "the log records requests (else this test proves nothing)"
    for secret in SECRETS_SEEN:
        assert secret[len("whsec_") :] not in logged, "a webhook secret is in the API's log"
