"""Every error the API answers is an RFC 9457 problem with a stable code and the offending param, and bad
input is a 4xx — shown on a small app using the API's own handlers, middleware and models (in memory)."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from producers.api.accounts import check_kind_fields, tokens
from producers.api.problems import ApiError, BodySizeLimit, install_problem_handlers
from schemas.api.accounts import AccountCreate
from schemas.api.money import AMOUNT_MAX, Amount
from schemas.api.problems import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_KEYS: Final = {"type", "title", "status", "detail", "code", "param"}
LIMIT_BYTES: Final = 1024
KEY: Final = bytes(range(32))


class Transfer(BaseModel):
    """A body with an amount, as payments will take."""

    model_config = ConfigDict(extra="forbid", strict=True)
    amount: Amount
    note: str | None = None


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT_BYTES)

    @app.post("/transfers")
    async def transfer(body: Transfer) -> Transfer:
        return body

    @app.post("/accounts")
    async def account(body: AccountCreate) -> dict[str, str]:
        check_kind_fields(body)
        tokens(KEY, body.msisdn)
        return {"ok": "yes"}

    @app.get("/teapot")
    async def teapot() -> None:
        raise ApiError(status=409, code="alias_in_use", detail="taken", param="msisdn", headers={"X-Why": "test"})

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals 42")

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    """An in-memory client of the small app; a server error is answered, not raised."""
    return TestClient(_app(), raise_server_exceptions=False)


def _problem(response: Any, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS and Problem.model_validate(body)
    assert (body["status"], body["code"], body["param"]) == (status, code, param), body
    assert body["type"] == f"urn:kpsandbox:problem:{code}"
    return body


def _post(client: TestClient, path: str, body: object) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def test_an_integer_amount_is_accepted(client: TestClient) -> None:
    """A positive JSON integer up to AMOUNT_MAX is an amount."""
    for amount in (1, 25_000, AMOUNT_MAX):
        assert _post(client, "/transfers", {"amount": amount}).json() == {"amount": amount, "note": None}


def test_float_string_negative_and_zero_amounts_are_422(client: TestClient) -> None:
    """Floats (even 250.0), strings, booleans, zero, negatives and too-large amounts: 422 naming `amount`."""
    for amount in (250.5, 250.0, "250", True, 0, -100, AMOUNT_MAX + 1, None, [1]):
        _problem(_post(client, "/transfers", {"amount": amount}), 422, "invalid_parameter", "amount")


def test_malformed_bodies_are_400(client: TestClient) -> None:
    """Not JSON, not UTF-8, or not an object: 400 with no param."""
    _problem(_post(client, "/transfers", b'{"amount": 1'), 400, "invalid_json")
    _problem(_post(client, "/transfers", b"\xff\xfe{}"), 400, "invalid_json")
    _problem(_post(client, "/transfers", b""), 400, "invalid_request")
    _problem(_post(client, "/transfers", [1, 2]), 400, "invalid_request")


def test_missing_and_unknown_fields_name_the_param(client: TestClient) -> None:
    """A missing field is parameter_missing, an unknown one parameter_unexpected, each by name."""
    _problem(_post(client, "/transfers", {}), 422, "parameter_missing", "amount")
    _problem(_post(client, "/transfers", {"amount": 1, "amont": 2}), 422, "parameter_unexpected", "amont")


def test_account_rules_name_the_param_and_never_echo_a_number(client: TestClient) -> None:
    """Kind rules and bad mobile numbers are 422 naming the field; a refused number is not in the answer."""
    wallet = {"kind": "citizen_wallet", "msisdn": "03451234567", "district": "Peshawar", "gender": "female"}
    assert _post(client, "/accounts", wallet).json() == {"ok": "yes"}
    _problem(_post(client, "/accounts", wallet | {"gender": None}), 422, "parameter_missing", "gender")
    _problem(_post(client, "/accounts", wallet | {"category": "kiryana"}), 422, "parameter_unexpected", "category")
    merchant = {"kind": "merchant", "msisdn": "03451234567", "district": "Swat"}
    _problem(_post(client, "/accounts", merchant), 422, "parameter_missing", "category")
    _problem(
        _post(client, "/accounts", merchant | {"category": "kiryana", "gender": "male"}),
        422,
        "parameter_unexpected",
        "gender",
    )
    for number in ("04512345678", "0345123456", "+44 7911 123456", "٠٣٤٥١٢٣٤٥٦٧"):
        body = _problem(_post(client, "/accounts", wallet | {"msisdn": number}), 422, "invalid_parameter", "msisdn")
        assert number not in json.dumps(body, ensure_ascii=False)
    too_long = "0345123456789012345678"
    body = _problem(_post(client, "/accounts", wallet | {"msisdn": too_long}), 422, "invalid_parameter", "msisdn")
    assert too_long not in json.dumps(body)


def test_oversize_bodies_are_413(client: TestClient) -> None:
    """A body over the limit is refused by its Content-Length, and also when sent in chunks without one."""
    big = json.dumps({"amount": 1, "note": "x" * LIMIT_BYTES}).encode()
    _problem(_post(client, "/transfers", big), 413, "body_too_large")
    chunks = (big[i : i + 100] for i in range(0, len(big), 100))
    chunked = client.post("/transfers", content=chunks, headers={"Content-Type": "application/json"})
    _problem(chunked, 413, "body_too_large")


def test_routing_errors_api_errors_and_bugs_are_problems(client: TestClient) -> None:
    """Unknown path 404, wrong method 405, an ApiError as raised (with its headers), a bug as a 500 problem."""
    _problem(client.get("/nowhere"), 404, "not_found")
    _problem(client.get("/transfers"), 405, "method_not_allowed")
    teapot = client.get("/teapot")
    assert _problem(teapot, 409, "alias_in_use", "msisdn")["detail"] == "taken"
    assert teapot.headers["x-why"] == "test"
    assert "secret internals 42" not in _problem(client.get("/bug"), 500, "internal_error")["detail"]


def test_a_union_member_in_pydantic_s_location_is_not_part_of_the_param() -> None:
    """An optional constrained field fails inside a union: its loc names the member, not a field."""
    from producers.api.problems import _param

    assert _param(("body", "amount", "constrained-int")) == "amount"
    assert _param(("body", "qr", "function-after[check(), str]")) == "qr"
    assert _param(("body", "items", 0, "amount")) == "items.0.amount"


def test_oversize_headers_are_431(client: TestClient) -> None:
    """Headers over HEADER_BYTES_MAX together are refused before the app sees them."""
    from producers.api.problems import HEADER_BYTES_MAX

    response = client.post("/transfers", json={"amount": 1}, headers={"X-Padding": "p" * (HEADER_BYTES_MAX + 1)})
    _problem(response, 431, "headers_too_large")
