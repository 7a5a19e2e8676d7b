"""The console's cookies, its CSRF check and its response headers, each in one
place.

- The session cookie holds the ``sess-...`` token of ``POST /v1/auth/sessions``
  (the same sessions, table ``user_sessions``): HttpOnly, SameSite=Lax,
  Secure when the request came over HTTPS (or a proxy says it did), path
  ``/console``, living as long as the session.
- CSRF: every state-changing request (any method but GET, HEAD, OPTIONS) to
  the console carries a token, in the form field ``csrf_token`` or the
  ``X-CSRF-Token`` header (htmx sends it from ``hx-headers`` on ``<body>``).
  Signed in, the token is derived from the session's secret (a synchronizer
  token that needs no storage: SHA-256 with a label, so it reveals nothing of
  the session); before signing in (the sign-in form, the language switch) it
  is the value of a random ``moonbase_csrf`` cookie (double submit). A request
  whose ``Origin`` names another host is refused as well.
- Every console response carries a strict Content-Security-Policy (no inline
  script or style, nothing from elsewhere), no framing, no MIME sniffing, no
  referrer beyond this origin, and ``Cache-Control: no-store`` (a page that
  showed a secret once must not come back from a cache).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from moonbase.errors import PermissionDeniedError

SESSION_COOKIE = "moonbase_session"
CSRF_COOKIE = "moonbase_csrf"
LANGUAGE_COOKIE = "moonbase_lang"
ORG_COOKIE = "moonbase_org"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
YEAR_S = 365 * 24 * 3600

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class CsrfRefused(PermissionDeniedError):
    """A state-changing request without the page's token (or from elsewhere)."""


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=name != LANGUAGE_COOKIE,  # the language is no secret
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request)
    )


def session_token(request: Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return token if token.startswith("sess-") and len(token) <= 100 else None


def csrf_for_session(token: str) -> str:
    digest = hashlib.sha256(b"moonbase console csrf\0" + token.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def anonymous_csrf(request: Request) -> tuple[str, bool]:
    """The pre-sign-in token: the cookie's, or a new one (True: set the cookie)."""
    known = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(known) <= 100:
        return known, False
    return secrets.token_urlsafe(32), True


def expected_csrf(request: Request) -> str | None:
    token = session_token(request)
    if token is not None:
        return csrf_for_session(token)
    known = request.cookies.get(CSRF_COOKIE, "")
    return known if 20 <= len(known) <= 100 else None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not sent (older browsers, same-origin GET-turned-POST)
        return True
    # This host as the browser named it (a proxy may pass it as X-Forwarded-Host).
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return urlsplit(origin).netloc in hosts - {""}


async def check_csrf(request: Request) -> None:
    """The console router's dependency: every route of it passes here first."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = expected_csrf(request)
    if (
        not sent
        or expected is None
        or not hmac.compare_digest(sent.encode(), expected.encode())
        or not _same_origin(request)
    ):
        raise CsrfRefused("csrf", code="csrf_failed")


def secure_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response
