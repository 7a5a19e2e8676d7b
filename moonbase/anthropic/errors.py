"""Errors on the Anthropic surface, in Anthropic's shape and status codes.

The platform raises one error hierarchy (``moonbase.errors``); a request to
``/anthropic/...`` sees it as ``{"type": "error", "error": {"type", "message"}}``
with Anthropic's status/type pairs, so the ``anthropic`` SDKs raise their own
typed exceptions. A full engine is Anthropic's 529 ``overloaded_error``; a
rate limit or spent balance is a 429 ``rate_limit_error`` with ``retry-after``
where waiting helps.
"""

from __future__ import annotations

from typing import Any

from moonbase.errors import EngineOverloadedError, EngineUnavailableError, MoonbaseError

PREFIX = "/anthropic/"

OVERLOADED = 529
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    OVERLOADED: "overloaded_error",
}
# The platform's parameter names where Anthropic's differ.
_PARAMS = {"max_completion_tokens": "max_tokens", "stop": "stop_sequences"}


def is_anthropic_path(path: str) -> bool:
    return path.startswith(PREFIX)


def status_of(error: MoonbaseError) -> int:
    if isinstance(error, EngineOverloadedError | EngineUnavailableError):
        return OVERLOADED
    return error.status_code


def error_body(error: MoonbaseError) -> dict[str, Any]:
    status = status_of(error)
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    message = error.message
    # A top-level field is named as Anthropic names it; paths inside
    # messages are the translated conversation's, and the message says enough.
    param = _PARAMS.get(error.param, error.param) if error.param else None
    if param is not None and not param.startswith("messages") and param not in message:
        message = f"{param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}
