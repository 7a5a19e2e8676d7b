"""Console visitors over the organisation harness (tests/organization/harness.py):
each person signs in through the console's own form, in a browser-like client
of their own (their own cookie jar), and reads the CSRF token from the page as
a browser's form would send it."""

from __future__ import annotations

import re

import httpx

from tests.organization.harness import PASSWORD, Org

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EMAILS = {"outsider": "admin@b.example", "operator": "ops@platform"}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


class Visitor:
    """One browser: its cookies, and the token of the last page it read."""

    def __init__(self, org: Org, base_url: str = "http://moonbase", **headers: str) -> None:
        self.http = httpx.AsyncClient(
            transport=org.http._transport, base_url=base_url, headers=headers
        )
        self.csrf = ""

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        reply = await self.http.get(path, **kwargs)  # type: ignore[arg-type]
        if 'name="csrf_token"' in reply.text:
            self.csrf = csrf_of(reply.text)
        return reply

    async def post(
        self, path: str, data: dict[str, object] | None = None, csrf: bool = True,
        **kwargs: object,
    ) -> httpx.Response:  # fmt: skip
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        reply = await self.http.post(path, data=form, **kwargs)  # type: ignore[arg-type]
        if 'name="csrf_token"' in reply.text:
            self.csrf = csrf_of(reply.text)
        return reply

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/console/sign-in")
        return await self.post("/console/sign-in", {"email": email, "password": password})

    async def close(self) -> None:
        await self.http.aclose()


async def signed_in(org: Org, who: str, **headers: str) -> Visitor:
    visitor = Visitor(org, **headers)
    reply = await visitor.sign_in(EMAILS.get(who, f"{who}@a.example"))
    assert reply.status_code == 303, reply.text
    if who == "operator":  # in no organisation, and there are two: choose A
        await visitor.get("/console/organizations")
        chosen = await visitor.post("/console/organizations", {"organization": org.a})
        assert chosen.status_code == 303, chosen.text
    home = await visitor.get("/console")  # the signed-in page's token
    assert home.status_code == 200, home.text
    return visitor
