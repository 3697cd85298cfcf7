"""Every error the API answers, as RFC 9457 `application/problem+json` (schemas/api/problems.py).

Code raises one exception type, `ApiError`; one handler renders it. FastAPI's own errors are
translated into an `ApiError` first: a request that fails validation (bad JSON, a wrong type, a
missing or unknown field) is a 4xx naming the offending `param`, never a 5xx; an unknown path or
method is a 404 or 405 problem. Request bodies are capped (`BodySizeLimit`): a larger one is a 413
before the application reads it.

A problem's `detail` is built from pydantic's message, never from the input it refused, so a
mobile number sent in the wrong field is not echoed back (issue 9, item 8).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.api.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemCode, problem

BODY_BYTES_MAX: Final = 64 * 1024
HEADER_BYTES_MAX: Final = 16 * 1024  # all request headers together (names and values), as h11 bounds them
JSON_INVALID: Final = "json_invalid"
MISSING: Final = "missing"
EXTRA_FORBIDDEN: Final = "extra_forbidden"
# FastAPI raises a bare 400 only when it cannot parse the body at all (not UTF-8, say).
HTTP_STATUS_CODES: Final[dict[int, ProblemCode]] = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


class ApiError(Exception):
    """An answer other than success: its HTTP status, stable code, detail and offending parameter."""

    def __init__(
        self,
        *,
        status: int,
        code: ProblemCode,
        detail: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = problem(status=status, code=code, detail=detail, param=param)
        self.headers = dict(headers or {})


NO_KEY: Final = "send your secret key as `Authorization: Bearer sk_test_…`"
UNKNOWN_KEY: Final = "the secret key is unknown or revoked; create a tenant with `kpsandbox tenants create NAME`"


def unauthorized(detail: str) -> ApiError:
    """The 401 for a request without a working secret key."""
    return ApiError(
        status=401, code="unauthorized", detail=detail, param="Authorization", headers={"WWW-Authenticate": "Bearer"}
    )


def problem_response(error: ApiError) -> JSONResponse:
    """The problem+json response for an error."""
    return JSONResponse(
        error.problem.model_dump(mode="json"),
        status_code=error.problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers,
    )


UNION_MEMBER: Final = re.compile(r"[-\[]")


def _param(location: Sequence[Any]) -> str | None:
    """A dotted parameter name from pydantic's error location: ('body', 'gender') → 'gender';
    a header or path parameter by its own name; None when the whole body is to blame."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    # pydantic names the member of a union that failed ('constrained-int', 'function-after[…]'):
    # not a parameter; the API's own names are snake_case.
    return ".".join(part for part in parts if not UNION_MEMBER.search(part)) or None


def validation_error(error: RequestValidationError) -> ApiError:
    """The ApiError for FastAPI's validation failure: the first problem found, by its parameter.

    Not JSON → 400 invalid_json; a body that is not an object → 400 invalid_request; a missing
    field → 422 parameter_missing; an unknown one → 422 parameter_unexpected; else 422 invalid_parameter.
    """
    first: Mapping[str, Any] = next(iter(error.errors()), {})
    kind = first.get("type", "")
    message = str(first.get("msg", "the request is invalid"))
    if kind == JSON_INVALID:
        return ApiError(
            status=400, code="invalid_json", detail=f"the body is not valid JSON ({first.get('ctx', {}).get('error')})"
        )
    param = _param(first.get("loc", ()))
    if param is None:
        return ApiError(status=400, code="invalid_request", detail=f"the body must be a JSON object: {message}")
    if kind == MISSING:
        return ApiError(status=422, code="parameter_missing", detail=f"'{param}' is required", param=param)
    if kind == EXTRA_FORBIDDEN:
        return ApiError(
            status=422, code="parameter_unexpected", detail=f"'{param}' is not a parameter of this request", param=param
        )
    return ApiError(status=422, code="invalid_parameter", detail=f"'{param}': {message}", param=param)


def http_error(error: StarletteHTTPException) -> ApiError:
    """The ApiError for Starlette's own HTTP errors (no such route, wrong method)."""
    code = HTTP_STATUS_CODES.get(error.status_code, "invalid_request")
    return ApiError(status=error.status_code, code=code, detail=str(error.detail), headers=error.headers)


async def _render(request: Request, error: Exception) -> JSONResponse:
    """The one exception handler: every error the API answers is rendered here."""
    return error_response(error)


def error_response(error: Exception) -> JSONResponse:
    """The problem+json answer for any exception (also used where a response must be kept:
    producers/api/idempotency.py)."""
    if isinstance(error, RequestValidationError):
        error = validation_error(error)
    elif isinstance(error, StarletteHTTPException):
        # FastAPI turns any failure while reading the body into a bare 400; a BodyTooLarge from
        # BodySizeLimit's receive() is its cause and says what really happened.
        error = error.__cause__ if isinstance(error.__cause__, ApiError) else http_error(error)
    elif not isinstance(error, ApiError):  # a bug: Starlette re-raises it after this answer, and uvicorn logs it
        error = ApiError(status=500, code="internal_error", detail="the sandbox hit a bug; its log has the details")
    return problem_response(error)


def install_problem_handlers(app: FastAPI) -> None:
    """Routes ApiError, validation errors, HTTP errors and unexpected exceptions to the one handler."""
    for kind in (ApiError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _render)


# Every route documents its problems with this schema (OpenAPI `responses`); `problem_openapi`
# then removes the `application/json` twin FastAPI adds, and its own validation-error schema.
PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
PROBLEM_RESPONSE: Final[dict[str, Any]] = {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}
FASTAPI_VALIDATION_SCHEMAS: Final = ("HTTPValidationError", "ValidationError")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, all with the Problem schema."""
    return {status: PROBLEM_RESPONSE for status in statuses}


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the API answers: every error response is `application/problem+json`
    with the Problem schema (FastAPI would document its validation errors as `HTTPValidationError`)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                documented = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if documented.endswith("/HTTPValidationError"):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
                elif PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    return schema


class BodyTooLarge(ApiError):
    """A request body over BODY_BYTES_MAX."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status=413, code="body_too_large", detail=f"a request body is at most {limit} bytes; send less"
        )


class HeadersTooLarge(ApiError):
    """Request headers over HEADER_BYTES_MAX together."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status=431, code="headers_too_large", detail=f"the request's headers are at most {limit} bytes together"
        )


class BodySizeLimit:
    """ASGI middleware refusing request headers over HEADER_BYTES_MAX with a 431 problem (httptools,
    the HTTP parser, sets no bound of its own), and bodies over `max_bytes` with a 413 problem: at once
    when Content-Length says so, and while reading when a body without one grows past the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = BODY_BYTES_MAX) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) for name, value in scope["headers"]) > HEADER_BYTES_MAX:
            await problem_response(HeadersTooLarge(HEADER_BYTES_MAX))(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # inside the app: the one handler renders it
            return message

        await self.app(scope, counted, send)
