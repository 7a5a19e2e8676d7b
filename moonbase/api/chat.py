"""POST /v1/chat/completions: parse, call the chat service, render."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from moonbase.api.deps import CallerDep, RequestIdDep, ServicesDep
from moonbase.api.disconnect import cancel_on_disconnect
from moonbase.api.sse import start_sse
from moonbase.schemas.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> Response:
    request.state.model = body.model  # the metrics' model label
    chat = await services.chat.prepare(body, request_id, caller.account_id)
    if body.stream:
        return await start_sse(services.chat.stream(chat, caller))
    completion = await cancel_on_disconnect(request, services.chat.complete(chat, caller))
    if completion is None:  # the client is gone; nobody reads this
        return Response(status_code=499)
    return Response(completion.model_dump_json(), media_type="application/json", status_code=200)
