"""Every error leaves as Moonshot's error body: registered once, for the whole app."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from moonbase.anthropic import errors as anthropic_errors
from moonbase.errors import (
    AuthenticationError,
    BadRequestError,
    InternalError,
    MethodNotAllowedError,
    MoonbaseError,
    NotFoundError,
)

log = logging.getLogger(__name__)


def error_response(error: MoonbaseError, path: str = "") -> JSONResponse:
    """The error as the surface of ``path`` shapes it (Moonshot's, or Anthropic's)."""
    status, body = error_parts(error, path)
    return JSONResponse(body, status_code=status, headers=error.headers)


def error_parts(error: MoonbaseError, path: str) -> tuple[int, dict[str, Any]]:
    if anthropic_errors.is_anthropic_path(path):
        return anthropic_errors.status_of(error), anthropic_errors.error_body(error)
    return error.status_code, error.body()


def param_path(loc: tuple[Any, ...]) -> str | None:
    """('body', 'messages', 0, 'content') -> 'messages[0].content'."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_union_branch(part):
            path += f".{part}" if path else str(part)
    return path or None


def _is_union_branch(part: Any) -> bool:
    # pydantic names union branches ('str', 'list[...]', 'function-after[...]');
    # they are not fields the client wrote.
    text = str(part)
    return "[" in text or text in {"str", "int", "float", "bool", "dict", "list"}


def validation_error(exc: RequestValidationError) -> BadRequestError:
    errors = exc.errors()
    if not errors:
        return BadRequestError("Invalid request body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return BadRequestError(
            f"Invalid request: the body is not valid JSON ({first.get('ctx', {}).get('error', '')})"
        )
    param = param_path(tuple(first.get("loc", ())))
    if param is None and first.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return BadRequestError("Invalid request: the body must be a JSON object")
    message = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        message = "is required"
    detail = f"Invalid request: {param} {message}" if param else f"Invalid request: {message}"
    return BadRequestError(detail, param=param)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> str:
    """Every method some route of this path answers, as an Allow header."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def register_error_handlers(app: FastAPI, routers: Sequence[APIRouter] = ()) -> None:
    """``routers``: the included routers, whose routes a 405's Allow names."""
    routes = [route for router in routers for route in router.routes]

    @app.exception_handler(MoonbaseError)
    async def _moonbase(request: Request, exc: MoonbaseError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: MoonbaseError
        if exc.status_code == 404:
            error = NotFoundError("Not found: no such route", code="route_not_found")
        elif exc.status_code == 405:
            # RFC 9110 requires Allow on a 405. Starlette's names only the first
            # route of the path (GET and POST /v1/files are two routes).
            allow = allowed_methods([*routes, *request.app.router.routes], request.scope)
            error = MethodNotAllowedError(
                f"Method not allowed on this route; it allows {allow}"
                if allow
                else "Method not allowed on this route",
                allow=allow,
            )
        elif exc.status_code == 401:
            error = AuthenticationError(str(exc.detail))
        elif exc.status_code < 500:
            error = BadRequestError(str(exc.detail))
        else:
            error = InternalError(str(exc.detail))
        return error_response(error, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        error = InternalError("The server had an error, please try again later")
        return error_response(error, request.url.path)


def sse_error_event(exc: BaseException) -> str:
    """A mid-stream error, sent as one more SSE event before the stream ends."""
    error = exc if isinstance(exc, MoonbaseError) else InternalError("The server had an error")
    return f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"
