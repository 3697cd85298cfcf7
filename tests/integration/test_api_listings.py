"""Cursor-paginated listings through a real uvicorn server on the test stack's Kafka and PostgreSQL: payments,
accounts and an account's ledger transfers, paged through with every item seen exactly once (also while new
ones are made), newest first, within one tenant; bad limits and cursors are 422 (issue 9, item 4)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx
import pytest

from infra.settings import Settings
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, _assert_problem, _auth, _tenant_key, running_api
from tests.integration.test_api_payments import TOP_UP, _available, _open, _pay, _payment, _settle, _top_up

PAGES_MAX: Final = 50  # the paging loops' bound: far more pages than any test makes


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API for this module's tests, over its own database and topic prefix."""
    with running_api(settings, tmp_path_factory.mktemp("api-list-state"), "api_list") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the running API."""
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _page(client: httpx.AsyncClient, key: str, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=_auth(key))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["object"] == "list" and len(page["data"]) <= params.get("limit", 20), page
    assert (page["next_cursor"] is not None) == page["has_more"], page
    return page


async def _all(client: httpx.AsyncClient, key: str, path: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor until has_more is false."""
    pages = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(PAGES_MAX):
        page = await _page(client, key, path, **params)
        pages.append(page["data"])
        if not page["has_more"]:
            return pages
        params["starting_after"] = page["next_cursor"]
    pytest.fail(f"{path} had more than {PAGES_MAX} pages")


def _newest_first(items: list[dict[str, Any]]) -> bool:
    keys = [(item["created_at"], item["id"]) for item in items]
    return keys == sorted(keys, reverse=True)


async def test_payments_are_paged_newest_first_each_exactly_once(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Seven payments at three a page: 3, 3, 1, each once, newest first, has_more false at the end; a payment
    made mid-way does not repeat or hide any; another tenant sees none of them."""
    key, stranger = await _tenant_key(api.config, "lister"), await _tenant_key(api.config, "other lister")
    payer, payee = await _open(client, key), await _open(client, key)
    made = [(await _pay(client, key, payer=payer, payee=payee, amount=100 + n))["id"] for n in range(7)]

    pages = await _all(client, key, "/v1/payments", limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    seen = [payment["id"] for page in pages for payment in page]
    assert seen == list(reversed(made)), "newest first, each once"
    assert _newest_first([payment for page in pages for payment in page])

    first = await _page(client, key, "/v1/payments", limit=3)
    newer = await _pay(client, key, payer=payer, payee=payee, amount=99)
    rest = await _all_after(client, key, "/v1/payments", first["next_cursor"], limit=3)
    later = [payment["id"] for payment in first["data"]] + [payment["id"] for payment in rest]
    assert later == list(reversed(made)), "the new payment is before the first page, not in the later ones"
    assert (await _page(client, key, "/v1/payments", limit=1))["data"][0]["id"] == newer["id"]
    assert (await _page(client, key, "/v1/payments"))["data"][0]["amount"] == 99

    theirs = await _page(client, stranger, "/v1/payments")
    assert theirs["data"] == [] and theirs["has_more"] is False and theirs["next_cursor"] is None


async def _all_after(client: httpx.AsyncClient, key: str, path: str, cursor: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, "starting_after": cursor}
    for _ in range(PAGES_MAX):
        page = await _page(client, key, path, **params)
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["starting_after"] = page["next_cursor"]
    pytest.fail(f"{path} had more than {PAGES_MAX} pages")


async def test_accounts_are_paged_with_their_balances(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Five accounts at two a page: each once, newest first, with the balance GET /v1/accounts/{id} shows."""
    key = await _tenant_key(api.config, "account lister")
    opened = [await _open(client, key) for _ in range(5)]
    await _top_up(client, key, opened[0])
    await _settle(api.config)
    pages = await _all(client, key, "/v1/accounts", limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [account for page in pages for account in page]
    assert [account["id"] for account in listed] == list(reversed(opened))
    assert _newest_first(listed)
    by_id = {account["id"]: account for account in listed}
    assert by_id[opened[0]]["balance"]["available"] == TOP_UP and by_id[opened[0]]["status"] == "open"
    single = (await client.get(f"/v1/accounts/{opened[0]}", headers=_auth(key))).json()
    assert by_id[opened[0]] == single


async def test_an_accounts_transfers_are_the_ledgers_each_once_newest_first(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """A top-up, payments out and in, a partial capture and a refused payment: the payer's transfers, paged two
    at a time, are the ledger's (each once, newest first) with direction, counterparty, phase, status and the
    related top-up or payment; the refused payment moved nothing and is not listed; they add up to the balance."""
    key = await _tenant_key(api.config, "transfer lister")
    payer, payee = await _open(client, key), await _open(client, key)
    top_up = await _top_up(client, key, payer)
    await _settle(api.config)
    out = await _pay(client, key, payer=payer, payee=payee, amount=30_000)
    back = await _pay(client, key, payer=payee, payee=payer, amount=5_000)
    manual = await _pay(client, key, payer=payer, payee=payee, amount=20_000, capture_method="manual")
    refused = await _pay(client, key, payer=payer, payee=payee, amount=10 * TOP_UP)
    await _settle(api.config)
    assert (await _payment(client, key, refused["id"]))["status"] == "failed"
    capture = await client.post(f"/v1/payments/{manual['id']}/capture", json={"amount": 15_000}, headers=_auth(key))
    assert capture.status_code == 202, capture.text
    await _settle(api.config)

    pages = await _all(client, key, f"/v1/accounts/{payer}/transfers", limit=2)
    transfers = [transfer for page in pages for transfer in page]
    assert all(len(page) == 2 for page in pages[:-1]) and len(transfers) == len({t["id"] for t in transfers})
    assert _newest_first(transfers)
    summary = sorted(
        (t["direction"], t["amount"], t["phase"], t["status"], t["payment"], t["top_up"]) for t in transfers
    )
    assert summary == sorted(
        [
            ("credit", TOP_UP, "single", "posted", None, top_up["id"]),
            ("debit", 30_000, "single", "posted", out["id"], None),
            ("credit", 5_000, "single", "posted", back["id"], None),
            ("debit", 20_000, "pending", "posted", manual["id"], None),
            ("debit", 15_000, "post", "posted", manual["id"], None),
        ]
    ), transfers
    assert {t["counterparty"] for t in transfers if t["payment"]} == {payee}
    assert all(t["id"].startswith("xfr_") and t["currency"] == "PKR" for t in transfers)
    moved = sum(
        (1 if t["direction"] == "credit" else -1) * t["amount"] for t in transfers if t["phase"] in ("single", "post")
    )
    assert moved == await _available(client, key, payer) == TOP_UP - 30_000 + 5_000 - 15_000


async def test_another_tenants_account_and_bad_paging_are_refused(api: RunningApi, client: httpx.AsyncClient) -> None:
    """Another tenant's account's transfers → 404; a limit outside 1..100, a malformed cursor or one of another
    listing → 422 naming the parameter."""
    owner, stranger = await _tenant_key(api.config, "list owner"), await _tenant_key(api.config, "list stranger")
    account = await _open(client, owner)
    await _open(client, owner)
    path = f"/v1/accounts/{account}/transfers"
    _assert_problem(await client.get(path, headers=_auth(stranger)), 404, "not_found", "account_id")
    _assert_problem(
        await client.get("/v1/accounts/acc_" + "0" * 32 + "/transfers", headers=_auth(owner)),
        404,
        "not_found",
        "account_id",
    )
    for limit in ("0", "101", "-1", "ten"):
        response = await client.get("/v1/payments", params={"limit": limit}, headers=_auth(owner))
        _assert_problem(response, 422, "invalid_parameter", "limit")
    accounts_cursor = (await _page(client, owner, "/v1/accounts", limit=1))["next_cursor"]
    assert accounts_cursor is not None
    not_an_id = base64.urlsafe_b64encode(b"accounts|1|not-an-id").decode()
    for cursor in ("not a cursor", "Zm9vfGJhcnxiYXo", not_an_id, accounts_cursor[:-1] + "!", "x" * 300):
        response = await client.get("/v1/accounts", params={"starting_after": cursor}, headers=_auth(owner))
        _assert_problem(response, 422, "invalid_parameter", "starting_after")
    wrong_list = await client.get("/v1/payments", params={"starting_after": accounts_cursor}, headers=_auth(owner))
    _assert_problem(wrong_list, 422, "invalid_parameter", "starting_after")
    wrong_list = await client.get(path, params={"starting_after": accounts_cursor}, headers=_auth(owner))
    _assert_problem(wrong_list, 422, "invalid_parameter", "starting_after")
    _assert_problem(await client.get("/v1/payments", headers={}), 401, "unauthorized", "Authorization")
