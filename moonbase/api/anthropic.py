"""POST /anthropic/v1/messages and /anthropic/v1/messages/count_tokens.

Anthropic's Messages API, as Moonshot serves it for Claude Code and the
``anthropic`` SDKs: the same keys (``x-api-key`` or ``Authorization:
Bearer``), balance, limits, usage records and engines as
``/v1/chat/completions``, through the same ``ChatService``. The
``anthropic-version`` and ``anthropic-beta`` headers are accepted; no version
changes what is answered. Errors leave in Anthropic's shape
(``anthropic.errors``, chosen by path in ``api.error_handlers``).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from moonbase.anthropic import reply
from moonbase.anthropic.errors import error_body
from moonbase.anthropic.schemas import CountTokensRequest, MessagesRequest
from moonbase.anthropic.translate import resolve_model, to_chat_request
from moonbase.api.bodies import json_body, openapi_body
from moonbase.api.deps import (
    BillingDep,
    ChatDep,
    KeysDep,
    RequestIdDep,
    SettingsDep,
    key_owner,
)
from moonbase.api.disconnect import cancel_on_disconnect
from moonbase.api.sse import SseDialect, start_sse
from moonbase.auth.caller import KeyOwner
from moonbase.catalog import SPECS_BY_ID
from moonbase.chat.tally import Tally
from moonbase.errors import AuthenticationError, InternalError, MoonbaseError

router = APIRouter(prefix="/anthropic/v1", tags=["anthropic"])


async def get_anthropic_caller(request: Request, keys: KeysDep, billing: BillingDep) -> KeyOwner:
    """The key from ``x-api-key`` (the SDKs' default) or ``Authorization: Bearer``
    (Claude Code's ``ANTHROPIC_AUTH_TOKEN``); refused before the body is parsed
    when its account has nothing left to spend."""
    token = request.headers.get("x-api-key", "").strip()
    if not token:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise AuthenticationError(
            "x-api-key header is required: send your moonbase API key as 'x-api-key: sk-...'",
            code="missing_api_key",
        )
    owner = await key_owner(request, keys, token)
    await billing.check_funds(owner.account_id)
    return owner


AnthropicCallerDep = Annotated[KeyOwner, Depends(get_anthropic_caller)]
MessagesDep = Annotated[MessagesRequest, Depends(json_body(MessagesRequest))]
CountDep = Annotated[CountTokensRequest, Depends(json_body(CountTokensRequest))]


def _event(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _error_event(exc: BaseException) -> bytes:
    error = exc if isinstance(exc, MoonbaseError) else InternalError("The server had an error")
    return _event(error_body(error))


ANTHROPIC_SSE = SseDialect(
    event=_event, error=_error_event, done=b"", keepalive=_event({"type": "ping"})
)


@router.post("/messages", openapi_extra=openapi_body(MessagesRequest))
async def create_message(
    request: Request,
    chat_service: ChatDep,
    settings: SettingsDep,
    caller: AnthropicCallerDep,
    body: MessagesDep,
    request_id: RequestIdDep,
) -> Response:
    model = resolve_model(body.model, settings.anthropic.model_aliases)
    request.state.model = model if model in SPECS_BY_ID else "other"
    chat_request = to_chat_request(body, model, stream=body.stream)
    ticket, chat = await chat_service.start(chat_request, request_id, caller)
    msg_id = reply.message_id()
    if body.stream:
        tally = Tally(chat.generation.n)
        events = chat_service.run(chat, ticket, tally)
        return await start_sse(
            reply.stream_events(events, msg_id, chat.model_id, tally), ANTHROPIC_SSE
        )
    try:
        finished = await cancel_on_disconnect(request, chat_service.run_to_end(chat, ticket))
    finally:  # if the client left before the run began, nothing else releases it
        await chat_service.release(ticket)
    if finished is None:  # the client is gone; nobody reads this
        return Response(status_code=499)
    content = orjson.dumps(reply.message(msg_id, chat.model_id, finished))
    return Response(content, media_type="application/json")


@router.post("/messages/count_tokens", openapi_extra=openapi_body(CountTokensRequest))
async def count_tokens(
    chat_service: ChatDep,
    settings: SettingsDep,
    caller: AnthropicCallerDep,
    body: CountDep,
    request_id: RequestIdDep,
) -> Response:
    model = resolve_model(body.model, settings.anthropic.model_aliases)
    chat_request = to_chat_request(body, model)
    # Counted like the estimate endpoint: admitted (RPM, concurrency), never charged.
    ticket = await chat_service.admit_count(model, chat_request.messages, request_id, caller)
    try:
        total = await chat_service.count_request_tokens(
            chat_request, request_id, caller.account_id, caller.project_id
        )
    finally:
        await chat_service.release(ticket)
    return Response(orjson.dumps({"input_tokens": total}), media_type="application/json")
