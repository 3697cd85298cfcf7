"""RFC 9457 problem details: the body of every error the API answers (`application/problem+json`).

Each problem has a stable `code` a client can switch on; `type` is that code as a URN, so the
document names no host. `param` names the offending request parameter, when there is one, as a
dotted path into the JSON body (`kind`, `balance.amount`) or the name of a header or path part.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:kpsandbox:problem:"

ProblemCode = Literal[
    "invalid_json",  # 400: the body is not JSON
    "invalid_request",  # 400: the request is malformed in a way no single parameter explains
    "invalid_parameter",  # 422: a parameter has the wrong type or value
    "parameter_missing",  # 422: a required parameter is absent
    "parameter_unexpected",  # 422: a parameter this request does not take (unknown, or not for this kind)
    "unauthorized",  # 401: no, unknown or revoked secret key
    "not_found",  # 404: no such object for this tenant, or no such path
    "method_not_allowed",  # 405
    "alias_in_use",  # 409: the mobile number's Raast alias already names another of the tenant's accounts
    "magic_number",  # 422: the mobile number is one of the magic values (schemas/api/magic.py)
    "magic_account",  # 422: an account the sandbox made for a magic value, used to pay or be topped up
    "accounts_must_be_different",  # 400: a payment's payer and payee are the same account
    "payment_not_capturable",  # 409: capture or cancel of a payment that is not `requires_capture`
    "payment_not_refundable",  # 409: a refund of a payment that is not `succeeded`, or is refunded in full
    "payment_request_expired",  # 409: approve or decline of a payment request past its `expires_at`
    "payment_request_not_pending",  # 409: approve or decline of a payment request answered already
    "qr_invalid",  # 422: a QR payload that is not a sandbox code, or fails its CRC (the reason is in `detail`)
    "qr_expired",  # 422: a dynamic QR code past its expiry
    "qr_already_paid",  # 409: a dynamic QR code paid already (or being paid)
    "webhook_endpoints_limit",  # 409: the tenant has the most webhook endpoints it may have
    "webhook_endpoint_disabled",  # 409: a resend or replay to a disabled webhook endpoint
    "no_webhook_endpoints",  # 409: a resend no enabled endpoint of the tenant subscribes to
    "test_clock_not_forward",  # 422: a test clock advanced to a time not after its current time
    "idempotency_key_invalid",  # 400: an Idempotency-Key that is empty, too long or not printable ASCII
    "idempotency_key_reused",  # 409: an Idempotency-Key used before with another request
    "idempotency_key_in_progress",  # 409: the first request with this Idempotency-Key is still running
    "body_too_large",  # 413
    "headers_too_large",  # 431
    "service_unavailable",  # 503: Kafka or PostgreSQL did not answer in time; retrying later may work
    "internal_error",  # 500: a bug; the sandbox's log has the details
]

TITLES: Final[dict[str, str]] = {
    "invalid_json": "The request body is not valid JSON",
    "invalid_request": "The request is malformed",
    "invalid_parameter": "A parameter is invalid",
    "parameter_missing": "A required parameter is missing",
    "parameter_unexpected": "A parameter is not accepted here",
    "unauthorized": "Authentication failed",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "alias_in_use": "The alias is in use",
    "magic_number": "The number is a magic value",
    "magic_account": "The account is a magic value's",
    "accounts_must_be_different": "The payer and the payee are the same account",
    "payment_not_capturable": "The payment cannot be captured or canceled",
    "payment_not_refundable": "The payment cannot be refunded",
    "payment_request_expired": "The payment request has expired",
    "payment_request_not_pending": "The payment request was answered already",
    "qr_invalid": "The QR code cannot be read",
    "qr_expired": "The QR code has expired",
    "qr_already_paid": "The QR code is paid already",
    "webhook_endpoints_limit": "Too many webhook endpoints",
    "webhook_endpoint_disabled": "The webhook endpoint is disabled",
    "no_webhook_endpoints": "No webhook endpoint to send to",
    "test_clock_not_forward": "A test clock only moves forward",
    "idempotency_key_invalid": "The Idempotency-Key is invalid",
    "idempotency_key_reused": "The Idempotency-Key was used with another request",
    "idempotency_key_in_progress": "A request with this Idempotency-Key is in progress",
    "body_too_large": "The request body is too large",
    "headers_too_large": "The request headers are too large",
    "service_unavailable": "The sandbox is temporarily unavailable",
    "internal_error": "Internal error",
}


class Problem(BaseModel):
    """An error answer (RFC 9457). Extra members beyond the RFC's: `code` and `param`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="A URN naming the problem type: `urn:kpsandbox:problem:<code>`.")
    title: str = Field(description="A short, human-readable summary of the problem type.")
    status: int = Field(ge=400, le=599, description="The HTTP status code of this answer.")
    detail: str = Field(description="What went wrong in this request, and what to do about it.")
    code: ProblemCode = Field(description="A stable, machine-readable error code.")
    param: str | None = Field(default=None, description="The offending parameter, if one is to blame.")


def problem(*, status: int, code: ProblemCode, detail: str, param: str | None = None) -> Problem:
    """The problem document for one error."""
    return Problem(
        type=PROBLEM_TYPE_PREFIX + code, title=TITLES[code], status=status, detail=detail, code=code, param=param
    )
