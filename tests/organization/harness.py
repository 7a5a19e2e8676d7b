"""An app with two organisations and a person in every role, signed in.

Organisation A (the bootstrapped ``default``) has an owner, an admin, a
member (in project P1, not in P2) and a viewer; organisation B has an admin
(the outsider); the platform operator belongs to none. Each signs in through
the API (POST /v1/auth/sessions), as a person would."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from moonbase import admin
from moonbase.app import create_app
from moonbase.organization import people
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from moonbase.store.repositories import accounts, projects, users
from tests.fakes import ScriptedEngine

PASSWORD = "correct horse battery"
ROLES_IN_A = ("owner", "admin", "member", "viewer")
# Members and viewers who own project P1: a project's owner manages it; a
# viewer changes nothing, whatever they own.
P1_OWNERS = {"project_owner": "member", "viewer_in_p1": "viewer"}


@dataclass
class Org:
    http: httpx.AsyncClient
    db: Database
    a: str  # organisation ids
    b: str
    p1: str  # projects of A: the member is in P1 only
    p2: str
    user_ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> session token
    api_key: str = ""  # a model-API key of A (not a management credential)

    def headers(self, who: str, org: str | None = None) -> dict[str, str]:
        token = self.tokens[who]
        headers = {"authorization": f"Bearer {token}"}
        if not token.startswith("sk-admin-"):
            default = self.b if who == "outsider" else self.a
            headers["openai-organization"] = org or default
        return headers

    async def add_user(self, email: str, org: str, role: str) -> str:
        user = await people.create_user(self.db, email, PASSWORD)
        async with self.db.transaction() as session:
            await users.add_member(session, org, user.id, role)
        return user.id

    async def fresh_member(self, role: str = "member") -> str:
        return await self.add_user(f"{secrets.token_hex(4)}@example.com", self.a, role)

    async def sign_in(self, email: str) -> str:
        reply = await self.http.post(
            "/v1/auth/sessions", json={"email": email, "password": PASSWORD}
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["token"])


@asynccontextmanager
async def organisations(db: Database, tmp_path: Path) -> AsyncIterator[Org]:
    settings = Settings(data_dir=tmp_path)
    issued = await admin.bootstrap(db, settings.billing)
    assert issued is not None
    b = await admin.create_account(db, "beta")
    research = await admin.create_project(db, "default", "research")
    secret = await admin.create_project(db, "default", "secret")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as http:
            async with db.read() as session:
                a = await accounts.get_by_name(session, "default")
            assert a is not None
            org = Org(http, db, a.id, b.id, research.id, secret.id, api_key=issued.secret)
            for role in ROLES_IN_A:
                org.user_ids[role] = await org.add_user(f"{role}@a.example", a.id, role)
            for name, role in P1_OWNERS.items():
                org.user_ids[name] = await org.add_user(f"{name}@a.example", a.id, role)
            org.user_ids["outsider"] = await org.add_user("admin@b.example", b.id, "admin")
            operator = await people.create_user(db, "ops@platform", PASSWORD, operator=True)
            org.user_ids["operator"] = operator.id
            async with db.transaction() as session:
                await users.add_project_member(
                    session, research.id, org.user_ids["member"], "member"
                )
                for name in P1_OWNERS:
                    await users.add_project_member(
                        session, research.id, org.user_ids[name], "owner"
                    )
                assert await projects.get(session, secret.id) is not None
            for role in (*ROLES_IN_A, *P1_OWNERS, "outsider"):
                email = "admin@b.example" if role == "outsider" else f"{role}@a.example"
                org.tokens[role] = await org.sign_in(email)
            org.tokens["operator"] = await org.sign_in("ops@platform")
            created = await http.post(
                "/v1/organization/admin_api_keys", json={"name": "ci"}, headers=org.headers("owner")
            )
            assert created.status_code == 201, created.text
            org.tokens["owner_admin_key"] = created.json()["value"]
            yield org
