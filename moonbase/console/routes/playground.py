"""The playground: talk to a model from the browser. The page's script
(console.js) posts the request here and reads the answer as the API's own
server-sent events; no API key ever reaches the page. The person picks one of
their projects, and that project pays: ``OrganizationService.project_caller``
makes the caller (a viewer may not spend), and the request goes through
``ChatService`` exactly as ``POST /v1/chat/completions`` does (funds,
admission, rate limits, budgets, billing and usage). The token count is
``POST /v1/tokenizers/estimate-token-count``'s, the same way."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from moonbase.api.deps import BillingDep, ChatDep, ModelsDep, OrganizationDep, RequestIdDep
from moonbase.api.sse import start_sse
from moonbase.auth.roles import OrgRole, Principal
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import (
    BadRequestError,
    MoonbaseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    TryAgainLaterError,
)
from moonbase.schemas.chat import ChatCompletionRequest, Message

router = console_router()
nav("/console/playground", "nav.playground", order=90)
MAX_BODY = 20 * 1024 * 1024  # an image as a data URL, and the conversation


def may_spend(p: Principal, project_id: str) -> bool:
    """Whom the page offers a project to (the service decides again)."""
    return p.manages_org or (p.role is OrgRole.MEMBER and project_id in p.projects)


@router.get("/playground")
async def playground(page: MemberPage, service: OrganizationDep, models: ModelsDep) -> Response:
    p = page.signed_in
    projects = [x for x in await service.projects(p) if may_spend(p, x.id)]
    catalogue = [
        {
            "id": m.id,
            "context": m.context_length,
            "context_text": page.t.number(m.context_length),
            "thinking": m.spec.family.thinking.value,
            "image": m.supports_image_in,
            "video": m.supports_video_in,
        }
        for m in sorted(models.all(), key=lambda m: m.id)
    ]
    return page.render("playground.html", projects=projects, models=catalogue)


def error_text(page: Page, exc: MoonbaseError) -> str:
    t = page.t
    if isinstance(exc, TryAgainLaterError):  # a rate limit, a full engine
        return t("playground.try_later", seconds=exc.retry_after or 1)
    if isinstance(exc, QuotaExceededError):  # no balance, or the project's budget
        return t("playground.no_funds", detail=exc.message)
    if isinstance(exc, BadRequestError | PermissionDeniedError | NotFoundError):
        return page.error_text(exc)
    if exc.status_code < 500:
        return t("error.invalid", detail=exc.message)
    return t("playground.engine_error", detail=exc.message)


def _refused(page: Page, exc: MoonbaseError) -> Response:
    """For the page's script: what to fix, in the visitor's language."""
    return JSONResponse(
        {"error": {"message": error_text(page, exc), "code": exc.code}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _bad(exc: ValidationError) -> BadRequestError:
    """The first problem, naming where it is (``messages.1.content``), as the API does."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return BadRequestError(f"{where}: {first['msg']}" if where else first["msg"])


async def _json(page: Page) -> dict[str, Any]:
    raw = await page.request.body()
    if len(raw) > MAX_BODY:
        raise BadRequestError("the request is too large (at most 20 MB)")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request is not a JSON object")
    return body


@router.post("/playground/chat")
async def chat(
    page: MemberPage,
    service: OrganizationDep,
    billing: BillingDep,
    chat_service: ChatDep,
    request_id: RequestIdDep,
) -> Response:
    try:
        body = await _json(page)
        caller = await service.project_caller(page.signed_in, str(body.get("project", "")))
        await billing.check_funds(caller.account_id)
        request = body.get("request")
        if not isinstance(request, dict):
            raise BadRequestError("no request", param="messages")
        request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        try:
            parsed = ChatCompletionRequest.model_validate(request)
        except ValidationError as exc:
            raise _bad(exc) from None
        ticket, prepared = await chat_service.start(parsed, request_id, caller)
    except MoonbaseError as exc:
        return _refused(page, exc)
    return await start_sse(chat_service.stream(prepared, ticket))


@router.post("/playground/count")
async def count(
    page: MemberPage, service: OrganizationDep, chat_service: ChatDep, request_id: RequestIdDep
) -> Response:
    try:
        body = await _json(page)
        caller = await service.project_caller(page.signed_in, str(body.get("project", "")))
        model = str(body.get("model", ""))
        try:
            messages = [Message.model_validate(m) for m in body.get("messages") or []]
        except ValidationError as exc:
            raise _bad(exc) from None
        if not messages:
            return JSONResponse({"total_tokens": 0})
        ticket = await chat_service.admit_count(model, messages, request_id, caller)
        try:
            total = await chat_service.count_prompt_tokens(
                model, messages, caller.account_id, caller.project_id
            )
        finally:
            await chat_service.release(ticket)
    except MoonbaseError as exc:
        return _refused(page, exc)
    return JSONResponse({"total_tokens": total, "text": page.t.number(total)})
