"""``x-request-id`` and ``x-trace-id`` (read by kimi-cli) on every response.

Also reads request bodies without a JSON content type as JSON, and refuses a
URL whose path or query holds text no store can keep (NUL, a lone surrogate):
ids and filters reach database lookups, and PostgreSQL errors on a NUL.

A pure ASGI middleware: Starlette's BaseHTTPMiddleware would buffer streams
and hide client disconnects from the endpoint.
"""

from __future__ import annotations

import secrets
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.api.error_handlers import error_response
from moonbase.bounds import unstorable_reason
from moonbase.errors import BadRequestError
from moonbase.logs import request_id_var


def new_request_id() -> str:
    return secrets.token_hex(16)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_var.set(request_id)  # every log line of this request carries it
        _default_to_json(scope)
        refused = _url_problem(scope)

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-trace-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        if refused is not None:
            await error_response(refused, scope.get("path", ""))(scope, receive, send_with_ids)
            return
        await self.app(scope, receive, send_with_ids)


def _url_problem(scope: Scope) -> BadRequestError | None:
    query = unquote(scope.get("query_string", b"").decode("latin-1"), errors="surrogateescape")
    for part, text in (("path", scope.get("path", "")), ("query", query)):
        reason = unstorable_reason(text)
        if reason is not None:
            return BadRequestError(f"Invalid request: the URL's {part} {reason}")
    return None


def _default_to_json(scope: Scope) -> None:
    """Read an unlabelled body as JSON, as the platform does.

    ``curl -d`` labels a JSON body as a form; the API has no form endpoints
    (file uploads are multipart and keep their label). The console's pages
    (``/console/...``) post real forms, which keep theirs.
    """
    if scope.get("path", "").startswith("/console/"):
        return
    headers = scope.get("headers", [])
    content_type = next((v for k, v in headers if k == b"content-type"), None)
    if content_type is None or content_type.startswith(b"application/x-www-form-urlencoded"):
        kept = [(k, v) for k, v in headers if k != b"content-type"]
        scope["headers"] = [*kept, (b"content-type", b"application/json")]
