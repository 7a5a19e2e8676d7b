"""One exception hierarchy, rendered once as Moonshot's error body.

Every error moonbase returns has the shape
``{"error": {"message", "type", "code"?, "param"?}}``: ``code`` and ``param``
appear only when they have a value, as on Moonshot's platform (its OpenAPI
document types ``code`` as a string, never null; openai-python reads a
missing one as None). The classes mirror openai-python's so that client code
maps them one to one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MoonbaseError(Exception):
    """Base of every error that reaches a client."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after  # seconds until the same request may succeed

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries (``Retry-After``)."""
        return {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.error_type}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


class BadRequestError(MoonbaseError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(MoonbaseError):
    status_code = 401
    error_type = "invalid_authentication_error"


class PermissionDeniedError(MoonbaseError):
    status_code = 403
    error_type = "permission_denied_error"


class NotFoundError(MoonbaseError):
    status_code = 404
    error_type = "resource_not_found_error"


class MethodNotAllowedError(MoonbaseError):
    status_code = 405
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, allow: str = "") -> None:
        super().__init__(message)
        self.allow = allow  # the methods the route takes (RFC 9110: Allow on every 405)

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class TryAgainLaterError(MoonbaseError):
    """A 429 that passes: the same request can succeed in ``retry_after``
    seconds (a rate limit, a full engine). A batch line refused so waits for
    the next pass instead of failing."""

    status_code = 429


class RateLimitError(TryAgainLaterError):
    error_type = "rate_limit_reached_error"


class EngineOverloadedError(TryAgainLaterError):
    error_type = "engine_overloaded_error"


class QuotaExceededError(MoonbaseError):
    """A 429 that does not pass by waiting: the account has no money left."""

    status_code = 429
    error_type = "exceeded_current_quota_error"


class EngineUnavailableError(MoonbaseError):
    """No engine replica can take the request now (all down or ejected)."""

    status_code = 503
    error_type = "server_error"


class ShuttingDownError(MoonbaseError):
    """The server stopped while the request was still running."""

    status_code = 503
    error_type = "server_error"


class InternalError(MoonbaseError):
    status_code = 500
    error_type = "server_error"


def token_limit_exceeded(limit: int) -> BadRequestError:
    """The platform's own wording for prompt + max tokens over the context."""
    return BadRequestError(
        f"Your request exceeded model token limit: {limit}",
        param="max_completion_tokens",
        code="context_length_exceeded",
    )
