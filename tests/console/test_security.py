"""The console's security at the HTTP level: cookies, CSRF on every
state-changing route, the sign-in throttle, session expiry and "sign out
everywhere", the Content-Security-Policy, and no secret on any page after
the one that created it."""

from __future__ import annotations

import re

from sqlalchemy import update

from moonbase.console import security
from moonbase.store.tables import UserSession
from tests.console.harness import Visitor, signed_in
from tests.organization.harness import PASSWORD, Org


def _cookie_header(reply, name: str) -> str:  # type: ignore[no-untyped-def]
    found = [v for v in reply.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


async def test_signing_in_sets_an_httponly_lax_session_cookie(org: Org):
    visitor = Visitor(org)
    page = await visitor.get("/console/sign-in?next=/console/projects")
    assert page.status_code == 200 and "csrf_token" in page.text
    reply = await visitor.post(
        "/console/sign-in",
        {"email": "owner@a.example", "password": PASSWORD, "next": "/console/projects"},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/console/projects"
    cookie = _cookie_header(reply, security.SESSION_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    assert "secure" not in cookie and "max-age=" in cookie
    # Over HTTPS, or behind a proxy that says the request came so: Secure too.
    proxied = await Visitor(org, **{"x-forwarded-proto": "https"}).get("/console/sign-in")
    assert "secure" in _cookie_header(proxied, security.CSRF_COOKIE).lower()
    https = Visitor(org, base_url="https://moonbase")
    reply = await https.sign_in("owner@a.example")
    assert reply.status_code == 303
    assert "secure" in _cookie_header(reply, security.SESSION_COOKIE).lower()
    # Only console paths are followed after signing in.
    await visitor.get("/console/sign-in")
    away = await visitor.post(
        "/console/sign-in",
        {"email": "owner@a.example", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert away.headers["location"] == "/console"


async def test_a_page_needs_a_session_and_says_so_when_it_ends(org: Org):
    anonymous = Visitor(org)
    reply = await anonymous.get("/console/keys")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/console/sign-in?next=/console/keys"
    owner = await signed_in(org, "owner")
    assert (await owner.get("/console")).status_code == 200
    async with org.db.transaction() as session:  # the session's time runs out
        await session.execute(update(UserSession).values(expires_at=UserSession.created_at))
    ended = await owner.get("/console")
    assert ended.status_code == 303 and "ended=1" in ended.headers["location"]
    follow = await owner.get(ended.headers["location"])
    assert "Your session has ended" in follow.text


async def test_sign_out_and_sign_out_everywhere(org: Org):
    laptop = await signed_in(org, "admin")
    phone = await signed_in(org, "admin")
    other = await signed_in(org, "owner")
    out = await laptop.post("/console/sign-out")
    assert out.status_code == 303
    assert (await laptop.get("/console")).status_code == 303
    assert (await phone.get("/console")).status_code == 200  # only that session ended
    laptop2 = await signed_in(org, "admin")
    everywhere = await laptop2.post("/console/sign-out-everywhere")
    assert everywhere.status_code == 303
    for device in (laptop2, phone):
        assert (await device.get("/console")).status_code == 303
    assert (await other.get("/console")).status_code == 200  # someone else's stay
    # The API's sessions are the same sessions: the bearer token stopped too.
    api = await org.http.get("/v1/organization/projects", headers=org.headers("admin"))
    assert api.status_code == 401


async def test_every_state_changing_console_route_refuses_a_missing_or_wrong_token(org: Org):
    from moonbase.console import routers

    owner = await signed_in(org, "owner")
    other = await signed_in(org, "admin")
    routes = [
        (route.path, method)  # type: ignore[attr-defined]
        for router in routers()
        for route in router.routes
        for method in route.methods - {"GET", "HEAD"}  # type: ignore[attr-defined]
    ]
    assert len(routes) >= 12
    for path, method in routes:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for token in (None, "", "forged", other.csrf):
            data = {} if token is None else {"csrf_token": token}
            reply = await owner.http.request(method, concrete, data=data)
            assert reply.status_code == 403, (path, token, reply.status_code)
            assert "This form has expired" in reply.text
    # The right token from another site's page is refused too (Origin).
    reply = await owner.http.post(
        "/console/projects",
        data={"csrf_token": owner.csrf, "name": "x"},
        headers={"origin": "https://evil.example"},
    )
    assert reply.status_code == 403
    # Anonymous forms (sign in, language) are double-submit: cookie and field.
    anonymous = Visitor(org)
    await anonymous.get("/console/sign-in")
    forged = await anonymous.post(
        "/console/sign-in",
        {"email": "owner@a.example", "password": PASSWORD, "csrf_token": "x" * 43},
    )
    assert forged.status_code == 403
    assert security.SESSION_COOKIE not in anonymous.http.cookies


async def test_htmx_requests_carry_the_token_in_a_header(org: Org):
    owner = await signed_in(org, "owner")
    projects = await owner.get("/console/projects")
    assert f'"X-CSRF-Token": "{owner.csrf}"' in projects.text  # hx-headers on <body>
    reply = await owner.http.post(
        "/console/projects",
        data={"name": "by-htmx"},
        headers={"x-csrf-token": owner.csrf, "hx-request": "true"},
    )
    assert reply.status_code == 204 and reply.headers["hx-redirect"].startswith(
        "/console/projects/"
    )
    # A refusal under htmx replaces the page's content, not the row it aimed at.
    key = await owner.post("/console/keys", {"project": org.p1, "name": "owner's"})
    assert key.status_code == 200
    listing = (await owner.get(f"/console/keys?project={org.p1}")).text
    key_id = re.findall(rf"/console/keys/{org.p1}/([^/]+)/disable", listing)[0]
    viewer = await signed_in(org, "viewer")
    refused = await viewer.http.post(
        f"/console/keys/{org.p1}/{key_id}/disable",
        headers={"x-csrf-token": viewer.csrf, "hx-request": "true"},
    )
    assert refused.status_code == 403 and "does not allow this" in refused.text
    assert refused.headers["hx-retarget"] == "#main"
    done = await owner.http.post(
        f"/console/keys/{org.p1}/{key_id}/disable",
        headers={"x-csrf-token": owner.csrf, "hx-request": "true"},
    )
    assert done.status_code == 200 and done.text.startswith(
        f'<tr id="key-{key_id}" class="disabled">'
    )


async def test_sign_in_is_throttled_per_email(org: Org):
    visitor = Visitor(org)
    await visitor.get("/console/sign-in")
    for _ in range(10):  # users.max_failed_sign_ins
        wrong = await visitor.post(
            "/console/sign-in", {"email": "member@a.example", "password": "not the password"}
        )
        assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    refused = await visitor.post(
        "/console/sign-in", {"email": "member@a.example", "password": PASSWORD}
    )
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert security.SESSION_COOKIE not in visitor.http.cookies
    # Another email is not held back.
    assert (await Visitor(org).sign_in("viewer@a.example")).status_code == 303


async def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(org: Org):
    owner = await signed_in(org, "owner")
    created = await owner.post("/console/projects", {"name": "csp"})
    project_path = created.headers["location"].split("?")[0]
    for path in ("/console", "/console/projects", project_path, "/console/keys",
                 "/console/sign-in", "/console/accept-invite", "/console/nowhere",
                 "/console/usage", "/console/billing", "/console/limits"):  # fmt: skip
        reply = await owner.get(path)
        assert reply.status_code in (200, 404), (path, reply.status_code)
        csp = reply.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        )
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["cache-control"] == "no-store"
        for tag in re.findall(r"<script[^>]*>", reply.text):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\sstyle=", reply.text) and "<style" not in reply.text
        assert not re.search(r"\son[a-z]+=", reply.text), path  # no inline handlers


async def test_every_console_page_route_is_secured_and_strict_for_every_role(org: Org):
    """Every GET route without a path parameter (found from the routers, so a
    new page is covered without listing it): signed out, a redirect to sign
    in; signed in, as each role, a page (or the service's 403) with the CSP
    and headers, and no inline script or style."""
    from moonbase.console import routers

    paths = sorted(
        {
            route.path  # type: ignore[attr-defined]
            for router in routers()
            for route in router.routes
            if "GET" in route.methods and "{" not in route.path  # type: ignore[attr-defined]
        }
    )
    assert {"/console/usage", "/console/billing", "/console/limits"} <= set(paths)
    anonymous = Visitor(org)
    visitors = {who: await signed_in(org, who) for who in ("owner", "member", "viewer",
                                                           "outsider", "operator")}  # fmt: skip
    for path in paths:
        public = await anonymous.get(path)
        assert public.status_code in (200, 303, 404), (path, public.status_code)
        for who, visitor in visitors.items():
            reply = await visitor.get(path)
            assert reply.status_code in (200, 303, 403, 404), (who, path, reply.status_code)
            if reply.status_code == 303 or not reply.headers["content-type"].startswith(
                "text/html"
            ):
                continue
            csp = reply.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (who, path)
            assert reply.headers["cache-control"] == "no-store", (who, path)
            for tag in re.findall(r"<script[^>]*>", reply.text):
                assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
            assert not re.search(r"\sstyle=", reply.text) and "<style" not in reply.text, path
            assert not re.search(r"\son[a-z]+=", reply.text), path


async def test_no_secret_on_any_page_after_the_one_that_created_it(org: Org):
    owner = await signed_in(org, "owner")
    created = await owner.post("/console/keys", {"project": org.p1, "name": "once"})
    assert created.status_code == 200
    secret = re.search(r'value="(sk-[A-Za-z0-9]+)"', created.text)
    assert secret is not None, created.text
    listing = (await owner.get("/console/keys")).text
    key_id = re.search(rf"/console/keys/{org.p1}/([^/]+)/disable", listing)
    assert key_id is not None
    rotated = await owner.post(f"/console/keys/{org.p1}/{key_id.group(1)}/rotate", {"grace": "0"})
    new_secret = re.search(r'value="(sk-[A-Za-z0-9]+)"', rotated.text)
    assert new_secret is not None and new_secret.group(1) != secret.group(1)
    for who in ("owner", "admin", "member", "viewer", "operator"):
        visitor = owner if who == "owner" else await signed_in(org, who)
        for path in ("/console", "/console/keys", f"/console/keys?project={org.p1}",
                     "/console/projects", f"/console/projects/{org.p1}", "/console/usage?group=key",
                     "/console/usage.csv", "/console/billing", "/console/limits"):  # fmt: skip
            page = await visitor.get(path)
            if who == "member" and path == "/console/billing":
                assert page.status_code == 403  # the ledger is not a member's
                continue
            assert page.status_code == 200, (who, path)
            for value in (secret.group(1), new_secret.group(1)):
                assert value not in page.text and value[3:20] not in page.text, (who, path)
