"""POST /v1/tokenizers/estimate-token-count."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from moonbase.api.bodies import json_body, openapi_body
from moonbase.api.deps import ChatDep, RequestIdDep, SpendingCallerDep
from moonbase.schemas.tokenizers import EstimateTokenRequest, EstimateTokenResponse, TokenCount

router = APIRouter()


@router.post(
    "/v1/tokenizers/estimate-token-count",
    response_model=EstimateTokenResponse,
    openapi_extra=openapi_body(EstimateTokenRequest),
)
async def estimate_token_count(
    chat: ChatDep,
    caller: SpendingCallerDep,  # authenticated before the body is parsed
    body: Annotated[EstimateTokenRequest, Depends(json_body(EstimateTokenRequest))],
    request_id: RequestIdDep,
) -> EstimateTokenResponse:
    # Counting templates and tokenizes like a chat request: it is admitted like
    # one (quota, RPM, concurrency), and costs nothing once it is done.
    ticket = await chat.admit_count(body.model, body.messages, request_id, caller)
    try:
        total = await chat.count_prompt_tokens(
            body.model, body.messages, caller.account_id, caller.project_id
        )
    finally:
        await chat.release(ticket)
    return EstimateTokenResponse(data=TokenCount(total_tokens=total))
