"""POST /v1/chat/completions: parse, call the chat service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from moonbase.api.bodies import json_body, openapi_body
from moonbase.api.deps import ChatDep, RequestIdDep, SpendingCallerDep
from moonbase.api.disconnect import cancel_on_disconnect
from moonbase.api.sse import start_sse
from moonbase.catalog import SPECS_BY_ID
from moonbase.schemas.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter()


ChatRequestDep = Annotated[ChatCompletionRequest, Depends(json_body(ChatCompletionRequest))]


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    openapi_extra=openapi_body(ChatCompletionRequest),
)
async def create_chat_completion(
    request: Request,
    chat_service: ChatDep,
    caller: SpendingCallerDep,
    body: ChatRequestDep,
    request_id: RequestIdDep,
) -> Response:
    # The metrics' model label: catalog ids only, so that clients cannot mint series.
    request.state.model = body.model if body.model in SPECS_BY_ID else "other"
    ticket, chat = await chat_service.start(body, request_id, caller)
    if body.stream:
        return await start_sse(chat_service.stream(chat, ticket))
    try:
        completion = await cancel_on_disconnect(request, chat_service.complete(chat, ticket))
    finally:  # if the client left before complete() began, nothing else releases it
        await chat_service.release(ticket)
    if completion is None:  # the client is gone; nobody reads this
        return Response(status_code=499)
    return Response(completion.model_dump_json(), media_type="application/json", status_code=200)
