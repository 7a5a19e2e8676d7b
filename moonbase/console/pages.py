"""What every console page is made of: who is visiting (``Page``: the
language, the CSRF token, and for signed-in pages the ``Principal`` that the
services judge every action by), rendering a template, the navigation, and
``console_router()``: the router every page module uses, whose routes check
CSRF first, turn service errors into pages and add the security headers.

A page module (see docs/console.md)::

    router = console_router()
    nav("/console/projects", "nav.projects", order=20)

    @router.get("/projects")
    async def projects(page: MemberPage, service: OrganizationDep) -> Response:
        found = await service.projects(page.signed_in)
        return page.render("projects.html", projects=found)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from moonbase.api.deps import OrganizationDep
from moonbase.auth.roles import Principal
from moonbase.console import security
from moonbase.console.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, language_from
from moonbase.errors import (
    AuthenticationError,
    BadRequestError,
    MoonbaseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/console"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@functools.cache
def static_url(path: str) -> str:
    """``/console/static/<path>?v=<hash>``: a new file is a new URL (no stale caches)."""
    digest = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
    return f"{PREFIX}/static/{path}?v={digest}"


_env.globals["static"] = static_url


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str  # a catalogue key
    order: int
    operator: bool  # shown to the platform operator only


NAV: list[NavItem] = []


def nav(path: str, label: str, order: int, *, operator: bool = False) -> None:
    """Put a page in the navigation (members' part, or operators')."""
    NAV.append(NavItem(path, label, order, operator))
    NAV.sort(key=lambda item: item.order)


class SignInRequired(Exception):
    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason  # "ended": the session expired or was ended


class ChooseOrganization(Exception):
    pass


@dataclass
class Page:
    """One visit to one page."""

    request: Request
    t: Translator
    csrf: str
    principal: Principal | None = None
    organisations: list[tuple[str, str, str]] = field(default_factory=list)
    _new_csrf_cookie: bool = False

    @property
    def signed_in(self) -> Principal:
        assert self.principal is not None, "a MemberPage always has a principal"
        return self.principal

    async def form(self) -> FormData:
        return await self.request.form()

    async def field(self, name: str, max_length: int = 1000) -> str:
        """A form field's text ("" when absent), at most ``max_length`` characters."""
        value = (await self.form()).get(name)
        return value[:max_length].strip() if isinstance(value, str) else ""

    async def fields(self, name: str, max_length: int = 200) -> list[str]:
        return [
            v[:max_length].strip() for v in (await self.form()).getlist(name) if isinstance(v, str)
        ][:100]

    def error_text(self, exc: Exception) -> str:
        """What went wrong, said so that the visitor knows what to fix."""
        t = self.t
        if isinstance(exc, security.CsrfRefused):
            return t("error.csrf")
        if isinstance(exc, PermissionDeniedError):
            role = self.principal.role.value if self.principal else ""
            return t("error.forbidden", role=t(f"role.{role}") if role else "")
        if isinstance(exc, NotFoundError):
            return t("error.not_found")
        if isinstance(exc, RateLimitError):
            minutes = max(1, -(-(exc.retry_after or 60) // 60))
            return t("error.throttled", minutes=minutes)
        if isinstance(exc, AuthenticationError):
            return t("error.credentials")
        if isinstance(exc, BadRequestError):
            label = f"field.{exc.param}" if exc.param else ""
            if label and t(label) != label:
                return t("error.invalid_field", field=t(label), detail=exc.message)
            return t("error.invalid", detail=exc.message)
        return t("error.unexpected")

    def render(
        self, template: str, status: int = 200, headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        p = self.principal
        html = _env.get_template(template).render(
            t=self.t,
            page=self,
            principal=p,
            csrf_token=self.csrf,
            path=self.request.url.path,
            languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            nav=[i for i in NAV if not i.operator],
            operator_nav=[i for i in NAV if i.operator] if p is not None and p.operator else [],
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        if self._new_csrf_cookie:
            security.set_cookie(
                self.request, response, security.CSRF_COOKIE, self.csrf, security.YEAR_S
            )
        return response

    def redirect(self, path: str) -> Response:
        """After a change: see the result (303, so a reload does not post again)."""
        return redirect(self.request, path)


def redirect(request: Request, path: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"hx-redirect": path})
    return RedirectResponse(path, status_code=303)


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a console path of this site, nothing else."""
    if path and path.startswith(f"{PREFIX}/") and not path.startswith("//") and "\\" not in path:
        return path[:500]
    return PREFIX


def _translator(request: Request) -> Translator:
    return Translator(
        language_from(
            request.cookies.get(security.LANGUAGE_COOKIE), request.headers.get("accept-language")
        )
    )


async def any_page(request: Request) -> Page:
    """A page anyone may see (sign in): the pre-sign-in CSRF token."""
    token = security.session_token(request)
    if token is not None:
        page = Page(request, _translator(request), security.csrf_for_session(token))
    else:
        csrf, new = security.anonymous_csrf(request)
        page = Page(request, _translator(request), csrf, _new_csrf_cookie=new)
    request.state.console_page = page
    return page


async def member_page(request: Request, service: OrganizationDep) -> Page:
    """A signed-in page: its ``Principal`` in the chosen organisation, or a
    redirect to sign in (or to choose an organisation)."""
    page = await any_page(request)
    token = security.session_token(request)
    if token is None:
        raise SignInRequired()
    address = request.client.host if request.client else None
    chosen = request.cookies.get(security.ORG_COOKIE) or None
    try:
        page.principal = await service.principal(token, chosen, address)
    except AuthenticationError:
        raise SignInRequired("ended") from None
    except (BadRequestError, NotFoundError):  # several organisations, or one left since
        raise ChooseOrganization() from None
    page.organisations = await service.organisations_of(token)
    return page


AnyPage = Annotated[Page, Depends(any_page)]
MemberPage = Annotated[Page, Depends(member_page)]


class ConsoleRoute(APIRoute):
    """A console route: errors become pages (never JSON), a missing session a
    redirect to sign in, and every answer gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await handle(request)
            except SignInRequired as exc:
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                target = f"{PREFIX}/sign-in?next={quote(safe_next(here))}"
                response = redirect(request, target + ("&ended=1" if exc.reason else ""))
                if exc.reason:
                    security.clear_cookie(request, response, security.SESSION_COOKIE)
            except ChooseOrganization:
                response = redirect(request, f"{PREFIX}/organizations")
            except (MoonbaseError, RequestValidationError) as exc:
                response = await error_page(request, exc)
                if request.headers.get("hx-request") == "true":  # the page's main, not a row
                    response.headers.update(
                        {"hx-retarget": "#main", "hx-reswap": "innerHTML",
                         "hx-reselect": "#main > *"}
                    )  # fmt: skip
            return security.secure_headers(response)

        return handler


async def error_page(request: Request, exc: Exception) -> Response:
    page: Page = getattr(request.state, "console_page", None) or await any_page(request)
    if isinstance(exc, MoonbaseError):
        status = exc.status_code
    else:
        status, exc = 400, BadRequestError(str(exc))
    return page.render("error.html", status=status, message=page.error_text(exc))


def console_router() -> APIRouter:
    """The router of a console page module: CSRF checked before every route."""
    return APIRouter(
        prefix=PREFIX,
        route_class=ConsoleRoute,
        dependencies=[Depends(security.check_csrf)],
        include_in_schema=False,
    )
