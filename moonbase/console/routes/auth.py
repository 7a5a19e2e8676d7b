"""Signing in and out, the organisation to act in, and the language.

Sign-in goes through ``OrganizationService.sign_in``, the same check as
``POST /v1/auth/sessions`` (argon2id, the per-email throttle), and the
session it opens is the cookie's."""

from __future__ import annotations

import time

from fastapi import Request
from pydantic import ValidationError
from starlette.responses import Response

from moonbase.api.deps import OrganizationDep
from moonbase.console import security
from moonbase.console.i18n import LANGUAGES
from moonbase.console.pages import (
    AnyPage,
    MemberPage,
    SignInRequired,
    console_router,
    redirect,
    safe_next,
)
from moonbase.errors import AuthenticationError, BadRequestError, RateLimitError
from moonbase.schemas import organization as wire

router = console_router()


@router.get("/sign-in")
async def sign_in_form(page: AnyPage, next: str = "", ended: str = "", out: str = "") -> Response:
    return page.render(
        "sign_in.html", next=safe_next(next), email="", message="", ended=bool(ended),
        signed_out=bool(out),
    )  # fmt: skip


@router.post("/sign-in")
async def sign_in(page: AnyPage, service: OrganizationDep) -> Response:
    email = await page.field("email", 300)
    next_path = safe_next(await page.field("next", 500))
    try:
        form = wire.SignIn.model_validate(
            {"email": email, "password": (await page.field("password", 2000))}
        )
        session = await service.sign_in(form.email, form.password)
    except (AuthenticationError, RateLimitError, BadRequestError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            exc = AuthenticationError("invalid")
        status = exc.status_code
        headers = exc.headers
        return page.render(
            "sign_in.html", status=status, headers=headers, next=next_path, email=email,
            message=page.error_text(exc), ended=False, signed_out=False,
        )  # fmt: skip
    response = page.redirect(next_path)
    lifetime = max(1, session.expires_at - int(time.time()))
    security.set_cookie(page.request, response, security.SESSION_COOKIE, session.token, lifetime)
    security.clear_cookie(page.request, response, security.CSRF_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, service: OrganizationDep) -> Response:
    token = security.session_token(request)
    if token is not None:
        await service.sign_out(token)
    return _signed_out(request)


@router.post("/sign-out-everywhere")
async def sign_out_everywhere(page: MemberPage, service: OrganizationDep) -> Response:
    await service.sign_out_everywhere(page.signed_in)
    return _signed_out(page.request)


def _signed_out(request: Request) -> Response:
    response = redirect(request, "/console/sign-in?out=1")
    security.clear_cookie(request, response, security.SESSION_COOKIE)
    security.clear_cookie(request, response, security.ORG_COOKIE)
    return response


@router.get("/organizations")
async def organizations(page: AnyPage, service: OrganizationDep) -> Response:
    token = security.session_token(page.request)
    if token is None:
        raise SignInRequired()
    try:
        found = await service.organisations_of(token)
    except AuthenticationError:
        raise SignInRequired("ended") from None
    return page.render("organizations.html", organisations=found)


@router.post("/organizations")
async def choose_organization(page: AnyPage, service: OrganizationDep) -> Response:
    token = security.session_token(page.request)
    if token is None:
        raise SignInRequired()
    chosen = await page.field("organization", 100)
    try:
        found = await service.organisations_of(token)
    except AuthenticationError:
        raise SignInRequired("ended") from None
    if chosen not in {org_id for org_id, _, _ in found}:
        return page.render("organizations.html", status=400, organisations=found)
    response = page.redirect("/console")
    security.set_cookie(page.request, response, security.ORG_COOKIE, chosen, security.YEAR_S)
    return response


@router.post("/language")
async def language(page: AnyPage) -> Response:
    chosen = await page.field("language", 10)
    response = page.redirect(safe_next(await page.field("next", 500)))
    if chosen in LANGUAGES:
        security.set_cookie(
            page.request, response, security.LANGUAGE_COOKIE, chosen, security.YEAR_S
        )
    return response
