"""Every management route × every kind of caller: the allowed answer, or a
403 (seen but not theirs to do) or 404 (not theirs to see), always in the
platform's error shape; on SQLite and PostgreSQL.

Callers: no credentials, a model-API key, a session of each role in
organisation A, the owner's admin key, the platform operator, an admin of
organisation B acting in B (the outsider) and the outsider naming A."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moonbase.store.tables import (
    AdminKey,
    ApiKey,
    AuditEvent,
    Invite,
    OrgMember,
    Project,
    ProjectMember,
    User,
)
from tests.conftest import BOTH_DATABASES, empty_database
from tests.organization.harness import Org, organisations

MANAGERS = {"owner", "admin", "operator", "owner_admin_key"}
READERS = MANAGERS | {"member", "viewer", "project_owner", "viewer_in_p1"}
P1_MANAGERS = MANAGERS | {"project_owner"}  # what a project's owner may do to it
P1_USERS = P1_MANAGERS | {"member"}
CALLERS = sorted(READERS | {"outsider", "outsider_in_a", "none", "api_key"})
MEMBERS = {"member", "project_owner"}  # see only their projects

Target = Callable[[Org], Awaitable[tuple[str, dict[str, Any] | None]]]


@dataclass(frozen=True)
class Route:
    method: str
    target: Target  # builds a fresh target (path, body) for each call
    allowed: frozenset[str]
    # A route naming one of A's objects is a 404 to the outsider; a listing or
    # a creation answers in the outsider's own organisation (and must not
    # show A's objects).
    names_a: bool = True
    hidden_from_member: bool = False  # P2: the member is not in it

    def expected(self, caller: str) -> int | str:
        if caller in ("none", "api_key"):
            return 401
        if caller == "outsider_in_a":
            return 404
        if caller == "outsider":
            return 404 if self.names_a else "2xx"
        if caller in MEMBERS and self.hidden_from_member:
            return 404
        return "2xx" if caller in self.allowed else 403


def fixed(path: str, body: dict[str, Any] | None = None) -> Target:
    async def target(org: Org) -> tuple[str, dict[str, Any] | None]:
        return path.format(a=org.a, p1=org.p1, p2=org.p2, **org.user_ids), body

    return target


async def _fresh_user(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/users/{await org.fresh_member()}", None


async def _fresh_role_change(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/users/{await org.fresh_member()}", {"role": "viewer"}


async def _invite(org: Org) -> str:
    reply = await org.http.post(
        "/v1/organization/invites",
        json={"email": f"{secrets.token_hex(4)}@new.example", "role": "member"},
        headers=org.headers("owner"),
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def _fresh_invite(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/invites/{await _invite(org)}", None


async def _new_invite(org: Org) -> tuple[str, dict[str, Any] | None]:
    return "/v1/organization/invites", {
        "email": f"{secrets.token_hex(4)}@x.example",
        "role": "member",
    }


async def _new_project(org: Org) -> tuple[str, dict[str, Any] | None]:
    return "/v1/organization/projects", {"name": f"p-{secrets.token_hex(4)}"}


async def _add_to_p1(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/projects/{org.p1}/users", {
        "user_id": await org.fresh_member(),
        "role": "member",
    }


async def _p1_fresh_member(org: Org) -> str:
    user_id = await org.fresh_member()
    reply = await org.http.post(
        f"/v1/organization/projects/{org.p1}/users",
        json={"user_id": user_id, "role": "member"},
        headers=org.headers("owner"),
    )
    assert reply.status_code == 201, reply.text
    return user_id


async def _p1_role(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/projects/{org.p1}/users/{await _p1_fresh_member(org)}", {
        "role": "owner"
    }


async def _p1_remove(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/projects/{org.p1}/users/{await _p1_fresh_member(org)}", None


async def _owners_key(org: Org) -> str:
    reply = await org.http.post(
        f"/v1/organization/projects/{org.p1}/api_keys",
        json={"name": "owner's"},
        headers=org.headers("owner"),
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def _p1_key(org: Org) -> tuple[str, dict[str, Any] | None]:
    return f"/v1/organization/projects/{org.p1}/api_keys/{await _owners_key(org)}", None


async def _admin_key(org: Org) -> tuple[str, dict[str, Any] | None]:
    reply = await org.http.post(
        "/v1/organization/admin_api_keys", json={"name": "x"}, headers=org.headers("owner")
    )
    assert reply.status_code == 201, reply.text
    return f"/v1/organization/admin_api_keys/{reply.json()['id']}", None


def route(method: str, target: Target | str, allowed: set[str], **flags: bool) -> Route:
    built = fixed(target) if isinstance(target, str) else target
    return Route(method, built, frozenset(allowed), **flags)


ROUTES = {
    "list users": route("GET", "/v1/organization/users", READERS, names_a=False),
    "get user": route("GET", "/v1/organization/users/{viewer}", READERS),
    "change role": route("POST", _fresh_role_change, MANAGERS),
    "remove user": route("DELETE", _fresh_user, MANAGERS),
    "list invites": route("GET", "/v1/organization/invites", MANAGERS, names_a=False),
    "invite": route("POST", _new_invite, MANAGERS, names_a=False),
    "get invite": route("GET", _fresh_invite, MANAGERS),
    "withdraw invite": route("DELETE", _fresh_invite, MANAGERS),
    "list projects": route("GET", "/v1/organization/projects", READERS, names_a=False),
    "create project": route("POST", _new_project, MANAGERS, names_a=False),
    "get own project": route("GET", "/v1/organization/projects/{p1}", READERS),
    "get other project": route(
        "GET", "/v1/organization/projects/{p2}", READERS, hidden_from_member=True
    ),
    "modify project": route(
        "POST", fixed("/v1/organization/projects/{p1}", {"monthly_budget": 100}), P1_MANAGERS
    ),
    "modify other project": route(
        "POST",
        fixed("/v1/organization/projects/{p2}", {"monthly_budget": 100}),
        MANAGERS,
        hidden_from_member=True,
    ),
    "list project users": route("GET", "/v1/organization/projects/{p1}/users", READERS),
    "add project user": route("POST", _add_to_p1, P1_MANAGERS),
    "get project user": route("GET", "/v1/organization/projects/{p1}/users/{member}", READERS),
    "change project role": route("POST", _p1_role, P1_MANAGERS),
    "remove project user": route("DELETE", _p1_remove, P1_MANAGERS),
    "list other project's users": route(
        "GET", "/v1/organization/projects/{p2}/users", READERS, hidden_from_member=True
    ),
    "list other project's keys": route(
        "GET", "/v1/organization/projects/{p2}/api_keys", READERS, hidden_from_member=True
    ),
    "list project keys": route("GET", "/v1/organization/projects/{p1}/api_keys", READERS),
    "create project key": route(
        "POST",
        fixed("/v1/organization/projects/{p1}/api_keys", {"name": "k"}),
        P1_USERS,
    ),
    "get project key": route("GET", _p1_key, READERS),
    "revoke another's key": route("DELETE", _p1_key, P1_MANAGERS),
    "list admin keys": route("GET", "/v1/organization/admin_api_keys", MANAGERS, names_a=False),
    "create admin key": route(
        "POST", fixed("/v1/organization/admin_api_keys", {"name": "n"}), MANAGERS, names_a=False
    ),
    "get admin key": route("GET", _admin_key, MANAGERS),
    "revoke admin key": route("DELETE", _admin_key, MANAGERS),
    "usage": route(
        "GET",
        "/v1/organization/usage/completions?start_time=0&group_by=project_id",
        READERS,
        names_a=False,
    ),
    "costs": route(
        "GET", "/v1/organization/costs?start_time=0&group_by=project_id", READERS, names_a=False
    ),
    "audit log": route("GET", "/v1/organization/audit_logs", MANAGERS, names_a=False),
}


@pytest.fixture(params=BOTH_DATABASES)
async def org(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Org]:
    async with empty_database(request.param, tmp_path) as db:
        await db.migrate()
        async with organisations(db, tmp_path) as built:
            yield built


def _headers(org: Org, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "api_key":
        return {"authorization": f"Bearer {org.api_key}"}
    if caller == "outsider_in_a":
        return org.headers("outsider", org=org.a)
    return org.headers(caller)


async def state(org: Org) -> list[tuple[Any, ...]]:
    """Every row a management call could change (the audit log included: a
    refused call must not have written, even in part)."""
    rows: list[tuple[Any, ...]] = []
    async with org.db.read() as session:
        for table in (OrgMember, ProjectMember, Invite, Project, ApiKey, AdminKey, AuditEvent):
            for row in (await session.execute(select(table.__table__))).all():
                rows.append((table.__tablename__, *[str(v) for v in row]))
    return sorted(rows)


async def secrets_of_a(org: Org) -> set[str]:
    """The ids and emails of everything organisation A holds."""
    found: set[str] = set()
    async with org.db.read() as session:
        for table in (Project, Invite, ApiKey, AdminKey):
            found |= set(await session.scalars(select(table.id).where(table.account_id == org.a)))
        found |= set(await session.scalars(select(Invite.email).where(Invite.account_id == org.a)))
        members = select(OrgMember.user_id).where(OrgMember.account_id == org.a)
        only_a = members.except_(select(OrgMember.user_id).where(OrgMember.account_id == org.b))
        for user in await session.scalars(select(User).where(User.id.in_(only_a))):
            found |= {user.id, user.email}
    return found | {org.a}


async def test_every_route_answers_every_caller_as_its_role_allows(org: Org):
    wrong: list[str] = []
    for name, spec in ROUTES.items():
        for caller in CALLERS:
            path, body = await spec.target(org)
            before = await state(org)
            reply = await org.http.request(
                spec.method, path, json=body, headers=_headers(org, caller)
            )
            expected = spec.expected(caller)
            ok = (
                200 <= reply.status_code < 300
                if expected == "2xx"
                else reply.status_code == expected
            )
            if not ok:
                wrong.append(f"{name} as {caller}: {reply.status_code} {reply.text[:160]}")
                continue
            if reply.status_code >= 400:
                error = reply.json()["error"]
                if not (error["message"] and error["type"]):
                    wrong.append(f"{name} as {caller}: unshaped error {reply.text[:160]}")
                if await state(org) != before:
                    wrong.append(f"{name} as {caller}: refused ({reply.status_code}) yet changed")
            elif caller == "outsider":
                leaked = [x for x in await secrets_of_a(org) if x in reply.text]
                if leaked:
                    wrong.append(f"{name} as outsider shows organisation A's {leaked[:3]}")
    assert not wrong, "\n".join(wrong)


async def test_a_member_lists_only_their_projects(org: Org):
    listed = await org.http.get("/v1/organization/projects", headers=org.headers("member"))
    assert [p["id"] for p in listed.json()["data"]] == [org.p1]
    everything = await org.http.get("/v1/organization/projects", headers=org.headers("viewer"))
    assert {org.p1, org.p2} <= {p["id"] for p in everything.json()["data"]}
