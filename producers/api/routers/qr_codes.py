"""`/v1/qr_codes`: make a merchant's static or dynamic QR code, read it, fetch it as a PNG."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Response

from producers.api.deps import QrCodesDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.qr import QrCode, QrCodeCreate

router = APIRouter(prefix="/v1/qr_codes", tags=["qr codes"], route_class=IdempotentRoute)

PNG_MEDIA_TYPE: Final = "image/png"
PNG_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {PNG_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}, "description": "A PNG."}
}


@router.post(
    "",
    status_code=201,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 503),
    summary="Make a QR code",
)
async def create_qr_code(body: QrCodeCreate, tenant: TenantDep, qr_codes: QrCodesDep) -> QrCode:
    """A static code (the merchant's counter sticker) or a dynamic one (one checkout: amount,
    reference, bill number, expiry; paid once) in Pakistan's EMVCo merchant-presented format.
    Pay it with `"qr": payload` on POST /v1/payments."""
    return await qr_codes.create(tenant=tenant, request=body)


@router.get("/{qr_code_id}", responses=problem_responses(401, 404, 503), summary="Read a QR code")
async def get_qr_code(qr_code_id: str, tenant: TenantDep, qr_codes: QrCodesDep) -> QrCode:
    """One of your QR codes with its payload."""
    return await qr_codes.get(tenant=tenant, qr_code_id=qr_code_id)


@router.get(
    "/{qr_code_id}/image.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **problem_responses(401, 404, 503)},
    summary="A QR code as a PNG",
)
async def get_qr_code_image(qr_code_id: str, tenant: TenantDep, qr_codes: QrCodesDep) -> Response:
    """The code drawn as a black-on-white PNG (8 pixels a module, a 4-module quiet zone)."""
    return Response(content=await qr_codes.png(tenant=tenant, qr_code_id=qr_code_id), media_type=PNG_MEDIA_TYPE)
