"""POST /v1/tokenizers/estimate-token-count."""

from __future__ import annotations

from fastapi import APIRouter

from moonbase.api.deps import CallerDep, ServicesDep
from moonbase.schemas.tokenizers import EstimateTokenRequest, EstimateTokenResponse, TokenCount

router = APIRouter()


@router.post("/v1/tokenizers/estimate-token-count", response_model=EstimateTokenResponse)
async def estimate_token_count(
    body: EstimateTokenRequest, services: ServicesDep, caller: CallerDep
) -> EstimateTokenResponse:
    total = await services.chat.count_prompt_tokens(body.model, body.messages, caller.account_id)
    return EstimateTokenResponse(data=TokenCount(total_tokens=total))
