"""`/v1/test_helpers/magic_values`: the table of inputs that force an outcome (schemas/api/magic.py)."""

from __future__ import annotations

from fastapi import APIRouter

from producers.api.deps import TenantDep
from producers.api.problems import problem_responses
from schemas.api.magic import MAGIC_VALUES, MagicValueList

router = APIRouter(prefix="/v1/test_helpers/magic_values", tags=["test helpers"])


@router.get("", responses=problem_responses(401), summary="List the magic values")
async def list_magic_values(tenant: TenantDep) -> MagicValueList:
    """Every magic value: the field that takes it, the value, and the outcome it forces. The same
    table is in docs/api/magic-values.md."""
    del tenant  # authenticated like every /v1 route; the table is the same for every tenant
    return MagicValueList(data=list(MAGIC_VALUES))
