"""Accepting an invitation: the page the management API's invitation links
open (``/console/accept-invite#inv-...``). The token travels in the link's
fragment, which browsers never send: console.js copies it into the form.
A new person chooses a password; someone with an account accepts signed in
(their session), as ``OrganizationService.accept_invite`` requires."""

from __future__ import annotations

import time

from pydantic import ValidationError
from starlette.responses import Response

from moonbase.api.deps import OrganizationDep
from moonbase.console import security
from moonbase.console.pages import AnyPage, console_router
from moonbase.errors import AuthenticationError, MoonbaseError
from moonbase.schemas import organization as wire

router = console_router()


@router.get("/accept-invite")
async def accept_form(page: AnyPage) -> Response:
    signed_in = security.session_token(page.request) is not None
    return page.render("accept_invite.html", message="", name="", signed_in=signed_in)


@router.post("/accept-invite")
async def accept(page: AnyPage, service: OrganizationDep) -> Response:
    session = security.session_token(page.request)
    name = await page.field("name", 200)
    try:
        try:
            body = wire.InviteAccept.model_validate(
                {
                    "token": await page.field("token", 200),
                    "password": (await page.field("password", 1100)) or None,
                    "name": name,
                }
            )
        except ValidationError:
            raise AuthenticationError("invalid", code="invalid_invite") from None
        opened = await service.accept_invite(body, session)
    except MoonbaseError as exc:
        message = page.error_text(exc)
        if exc.code == "sign_in_to_accept":
            message = page.t("invite.sign_in_first")
        elif exc.code in ("invalid_invite", "invite_unavailable"):
            message = page.t("invite.unavailable")
        return page.render("accept_invite.html", status=exc.status_code, message=message,
                           name=name, signed_in=session is not None)  # fmt: skip
    response = page.redirect("/console")
    lifetime = max(1, opened.expires_at - int(time.time()))
    security.set_cookie(page.request, response, security.SESSION_COOKIE, opened.token, lifetime)
    security.clear_cookie(page.request, response, security.CSRF_COOKIE)
    security.clear_cookie(page.request, response, security.ORG_COOKIE)
    return response
