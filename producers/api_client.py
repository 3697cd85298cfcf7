"""A small typed client of the sandbox's HTTP API, for the developer CLI (`kpsandbox trigger`, `events`).

It speaks the API exactly as a startup would — over HTTP, with a tenant's secret key — and its
types are the API's own models (schemas/api), so a change to the API that the CLI does not follow
fails to validate here rather than printing something wrong. Every POST carries a fresh
Idempotency-Key. A problem answer (application/problem+json) becomes a SandboxError that quotes the
API's `code` and `detail`; an API that does not answer becomes one that says how to start it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel

from infra.errors import SandboxError
from schemas.api.accounts import Account, AccountCreate
from schemas.api.events import EventList, EventResend, WebhookDeliveryList
from schemas.api.payment_requests import PaymentRequest, PaymentRequestCreate
from schemas.api.payments import WAIT_MAX_S, Payment, PaymentCapture, PaymentCreate, TopUp, TopUpCreate
from schemas.api.refunds import Refund, RefundCreate
from schemas.api.test_clocks import TestClock, TestClockAdvance, TestClockCreate
from schemas.api.webhook_endpoints import WebhookEndpointCreate, WebhookEndpointDeleted, WebhookEndpointWithSecret
from schemas.webhooks import WebhookEvent

REQUEST_TIMEOUT_S: Final = WAIT_MAX_S + 5.0  # a `?wait=` read may take WAIT_MAX_S
API_KEY_ENV: Final = "KPSANDBOX_API_KEY"

M = TypeVar("M", bound=BaseModel)


class ApiClient:
    """One tenant's view of the API at `base_url`; use as an async context manager."""

    def __init__(self, base_url: str, api_key: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not api_key:
            raise SandboxError(
                "no API key was given",
                f"pass --api-key sk_test_… or set {API_KEY_ENV} (make one with `kpsandbox tenants create NAME`)",
            )
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=REQUEST_TIMEOUT_S,
            transport=transport,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, answer: type[M], *, body: BaseModel | None = None,
                    params: dict[str, Any] | None = None) -> M:  # fmt: skip
        """One request; the answer validated as `answer`, or a SandboxError naming what went wrong."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
        content = None if body is None else body.model_dump_json(exclude_none=True)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, path, content=content, params=params, headers=headers)
        except httpx.TransportError as error:
            raise SandboxError(
                f"the API at {self.base_url} did not answer ({type(error).__name__})",
                "start it with `kpsandbox serve` (or `kpsandbox up --apps`), or point --api-url at it",
            ) from error
        if response.is_error:
            raise problem_error(method, path, response)
        return answer.model_validate_json(response.content)

    async def open_account(self, request: AccountCreate) -> Account:
        """POST /v1/accounts."""
        return await self._call("POST", "/v1/accounts", Account, body=request)

    async def account(self, account_id: str) -> Account:
        """GET /v1/accounts/{id}."""
        return await self._call("GET", f"/v1/accounts/{account_id}", Account)

    async def top_up(self, request: TopUpCreate) -> TopUp:
        """POST /v1/test_helpers/top_ups."""
        return await self._call("POST", "/v1/test_helpers/top_ups", TopUp, body=request)

    async def top_up_settled(self, top_up_id: str, wait_s: float) -> TopUp:
        """GET /v1/test_helpers/top_ups/{id}?wait=…: once it is final, or after `wait_s`."""
        return await self._call("GET", f"/v1/test_helpers/top_ups/{top_up_id}", TopUp, params=_wait(wait_s))

    async def pay(self, request: PaymentCreate) -> Payment:
        """POST /v1/payments."""
        return await self._call("POST", "/v1/payments", Payment, body=request)

    async def payment(self, payment_id: str, wait_s: float = 0) -> Payment:
        """GET /v1/payments/{id} (with `?wait=` when `wait_s` > 0)."""
        return await self._call("GET", f"/v1/payments/{payment_id}", Payment, params=_wait(wait_s))

    async def capture(self, payment_id: str, request: PaymentCapture) -> Payment:
        """POST /v1/payments/{id}/capture."""
        return await self._call("POST", f"/v1/payments/{payment_id}/capture", Payment, body=request)

    async def cancel(self, payment_id: str) -> Payment:
        """POST /v1/payments/{id}/cancel."""
        return await self._call("POST", f"/v1/payments/{payment_id}/cancel", Payment)

    async def refund(self, request: RefundCreate) -> Refund:
        """POST /v1/refunds."""
        return await self._call("POST", "/v1/refunds", Refund, body=request)

    async def refund_settled(self, refund_id: str, wait_s: float) -> Refund:
        """GET /v1/refunds/{id}?wait=…."""
        return await self._call("GET", f"/v1/refunds/{refund_id}", Refund, params=_wait(wait_s))

    async def request_payment(self, request: PaymentRequestCreate) -> PaymentRequest:
        """POST /v1/payment_requests."""
        return await self._call("POST", "/v1/payment_requests", PaymentRequest, body=request)

    async def payment_request(self, request_id: str) -> PaymentRequest:
        """GET /v1/payment_requests/{id}."""
        return await self._call("GET", f"/v1/payment_requests/{request_id}", PaymentRequest)

    async def answer_request(self, request_id: str, verb: str) -> PaymentRequest:
        """POST /v1/payment_requests/{id}/approve or /decline."""
        return await self._call("POST", f"/v1/payment_requests/{request_id}/{verb}", PaymentRequest)

    async def events(self, *, type: str | None = None, limit: int = 10, starting_after: str | None = None) -> EventList:
        """GET /v1/events: newest first."""
        params = {k: v for k, v in {"type": type, "limit": limit, "starting_after": starting_after}.items() if v}
        return await self._call("GET", "/v1/events", EventList, params=params)

    async def event(self, event_id: str) -> WebhookEvent:
        """GET /v1/events/{id}."""
        return await self._call("GET", f"/v1/events/{event_id}", WebhookEvent)

    async def resend(self, event_id: str, webhook_endpoint: str | None = None) -> WebhookDeliveryList:
        """POST /v1/events/{id}/resend."""
        body = EventResend(webhook_endpoint=webhook_endpoint)
        return await self._call("POST", f"/v1/events/{event_id}/resend", WebhookDeliveryList, body=body)

    async def create_endpoint(self, request: WebhookEndpointCreate) -> WebhookEndpointWithSecret:
        """POST /v1/webhook_endpoints: the answer carries the signing secret in full (only here)."""
        return await self._call("POST", "/v1/webhook_endpoints", WebhookEndpointWithSecret, body=request)

    async def delete_endpoint(self, endpoint_id: str) -> WebhookEndpointDeleted:
        """DELETE /v1/webhook_endpoints/{id}."""
        return await self._call("DELETE", f"/v1/webhook_endpoints/{endpoint_id}", WebhookEndpointDeleted)

    async def endpoint_deliveries(self, endpoint_id: str) -> WebhookDeliveryList:
        """GET /v1/webhook_endpoints/{id}/deliveries: its latest deliveries, newest first, with every attempt."""
        return await self._call("GET", f"/v1/webhook_endpoints/{endpoint_id}/deliveries", WebhookDeliveryList)

    async def create_clock(self, request: TestClockCreate) -> TestClock:
        """POST /v1/test_helpers/test_clocks."""
        return await self._call("POST", "/v1/test_helpers/test_clocks", TestClock, body=request)

    async def clock(self, clock_id: str) -> TestClock:
        """GET /v1/test_helpers/test_clocks/{id}."""
        return await self._call("GET", f"/v1/test_helpers/test_clocks/{clock_id}", TestClock)

    async def advance_clock(self, clock_id: str, request: TestClockAdvance) -> TestClock:
        """POST /v1/test_helpers/test_clocks/{id}/advance."""
        return await self._call("POST", f"/v1/test_helpers/test_clocks/{clock_id}/advance", TestClock, body=request)


def _wait(wait_s: float) -> dict[str, Any] | None:
    return {"wait": min(wait_s, WAIT_MAX_S)} if wait_s > 0 else None


def problem_error(method: str, path: str, response: httpx.Response) -> SandboxError:
    """The API's problem answer as a SandboxError: its status, code and detail, and what to do."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    code, detail = problem.get("code", "error"), problem.get("detail", response.text[:200])
    if response.status_code == 401:
        hint = "check the key (--api-key or KPSANDBOX_API_KEY); `kpsandbox tenants create NAME` makes one"
    elif response.status_code == 503:
        hint = "the API's PostgreSQL or Kafka is down: `kpsandbox status`, then `kpsandbox up`"
    else:
        hint = "the detail above says what to change; see the API reference at /docs"
    param = f" (param {problem['param']})" if problem.get("param") else ""
    return SandboxError(f"{method} {path} answered {response.status_code} {code}{param}: {detail}", hint)


def api_base_url(host: str, port: int) -> str:
    """The URL the CLI calls the API at, from the API's own bind settings (a wildcard bind is reached
    on the loopback address)."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{reachable}:{port}"
