"""People: sign-in, invitations, the owner rules, admin keys that follow
their creator's role, the audit trail, and hostile input; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from moonbase.app import create_app
from moonbase.auth import passwords
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.repositories import audit
from moonbase.store.tables import FailedSignIn, Invite, utcnow
from tests.conftest import BOTH_DATABASES, empty_database
from tests.fakes import ScriptedEngine
from tests.organization.harness import PASSWORD, Org, organisations


@pytest.fixture(params=BOTH_DATABASES)
async def org(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Org]:
    async with empty_database(request.param, tmp_path) as db:
        await db.migrate()
        async with organisations(db, tmp_path) as built:
            yield built


def error_of(reply) -> dict:  # type: ignore[no-untyped-def]
    body = reply.json()
    assert set(body) == {"error"} and body["error"]["message"], reply.text
    return body["error"]


async def test_an_invitation_is_accepted_once_and_makes_a_member(org: Org):
    created = await org.http.post(
        "/v1/organization/invites",
        json={
            "email": "New.Person@Example.com",
            "role": "member",
            "projects": [{"id": org.p1, "role": "owner"}],
        },
        headers=org.headers("admin"),
    )
    assert created.status_code == 201, created.text
    invite = created.json()
    assert invite["email"] == "new.person@example.com" and invite["status"] == "pending"
    token = invite["token"]
    assert invite["accept_url"].endswith(f"/console/accept-invite#{token}")
    listed = await org.http.get("/v1/organization/invites", headers=org.headers("owner"))
    assert token not in listed.text  # shown once

    accepted = await org.http.post(
        "/v1/invites/accept", json={"token": token, "password": PASSWORD, "name": "New"}
    )
    assert accepted.status_code == 201, accepted.text
    session = accepted.json()
    assert session["organizations"] == [{"id": org.a, "role": "member"}]
    me = {"authorization": f"Bearer {session['token']}"}
    projects = await org.http.get("/v1/organization/projects", headers=me)
    assert [p["id"] for p in projects.json()["data"]] == [org.p1]
    # A project owner manages their project: here, its budgets.
    budget = await org.http.post(
        f"/v1/organization/projects/{org.p1}", json={"daily_budget": 3}, headers=me
    )
    assert budget.status_code == 200 and budget.json()["daily_budget"] == 3.0

    again = await org.http.post("/v1/invites/accept", json={"token": token, "password": PASSWORD})
    assert again.status_code == 400 and error_of(again)["code"] == "invite_unavailable"
    status = await org.http.get(
        f"/v1/organization/invites/{invite['id']}", headers=org.headers("owner")
    )
    assert status.json()["status"] == "accepted"
    unknown = await org.http.post("/v1/invites/accept", json={"token": "inv-x", "password": "y"})
    assert unknown.status_code == 404


async def test_expired_withdrawn_and_existing_users_invitations(org: Org):
    async def invite(email: str) -> dict:  # type: ignore[type-arg]
        reply = await org.http.post(
            "/v1/organization/invites",
            json={"email": email, "role": "viewer"},
            headers=org.headers("owner"),
        )
        assert reply.status_code == 201, reply.text
        return reply.json()  # type: ignore[no-any-return]

    late = await invite("late@example.com")
    async with org.db.transaction() as session:
        await session.execute(
            update(Invite)
            .where(Invite.id == late["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await org.http.post(
        "/v1/invites/accept", json={"token": late["token"], "password": PASSWORD}
    )
    assert expired.status_code == 400 and error_of(expired)["code"] == "invite_unavailable"

    gone = await invite("gone@example.com")
    deleted = await org.http.delete(
        f"/v1/organization/invites/{gone['id']}", headers=org.headers("admin")
    )
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    withdrawn = await org.http.post(
        "/v1/invites/accept", json={"token": gone["token"], "password": PASSWORD}
    )
    assert withdrawn.status_code == 400

    # Someone with an account elsewhere (organisation B's admin) accepts with
    # their own session; a password in the body is no way in (the token's
    # holder, the inviter too, must not get to guess at it).
    known = await invite("admin@b.example")
    guess = await org.http.post(
        "/v1/invites/accept", json={"token": known["token"], "password": PASSWORD}
    )
    assert guess.status_code == 401 and error_of(guess)["code"] == "sign_in_to_accept"
    someone_else = await org.http.post(
        "/v1/invites/accept",
        json={"token": known["token"]},
        headers={"authorization": f"Bearer {org.tokens['viewer']}"},
    )
    assert someone_else.status_code == 401
    right = await org.http.post(
        "/v1/invites/accept",
        json={"token": known["token"]},
        headers={"authorization": f"Bearer {org.tokens['outsider']}"},
    )
    assert right.status_code == 201, right.text
    assert {o["id"] for o in right.json()["organizations"]} == {org.a, org.b}
    dup = await org.http.post(
        "/v1/organization/invites",
        json={"email": "viewer@a.example", "role": "viewer"},
        headers=org.headers("owner"),
    )
    assert dup.status_code == 400 and "already a member" in error_of(dup)["message"]


async def test_only_an_owner_makes_changes_or_removes_an_owner(org: Org):
    owner_id, admin_id = org.user_ids["owner"], org.user_ids["admin"]
    promote = await org.http.post(
        f"/v1/organization/users/{admin_id}", json={"role": "owner"}, headers=org.headers("admin")
    )
    assert promote.status_code == 403 and error_of(promote)["type"] == "permission_denied_error"
    demote = await org.http.post(
        f"/v1/organization/users/{owner_id}", json={"role": "viewer"}, headers=org.headers("admin")
    )
    assert demote.status_code == 403
    invite_owner = await org.http.post(
        "/v1/organization/invites",
        json={"email": "o@example.com", "role": "owner"},
        headers=org.headers("admin"),
    )
    assert invite_owner.status_code == 403
    last = await org.http.post(
        f"/v1/organization/users/{owner_id}", json={"role": "admin"}, headers=org.headers("owner")
    )
    assert last.status_code == 400 and "at least one owner" in error_of(last)["message"]
    leave = await org.http.delete(
        f"/v1/organization/users/{owner_id}", headers=org.headers("owner")
    )
    assert leave.status_code == 400
    made = await org.http.post(
        f"/v1/organization/users/{admin_id}", json={"role": "owner"}, headers=org.headers("owner")
    )
    assert made.status_code == 200 and made.json()["role"] == "owner"
    step_down = await org.http.post(
        f"/v1/organization/users/{owner_id}", json={"role": "admin"}, headers=org.headers("owner")
    )
    assert step_down.status_code == 200
    bad = await org.http.post(
        f"/v1/organization/users/{owner_id}", json={"role": "king"}, headers=org.headers("admin")
    )
    assert bad.status_code == 400 and error_of(bad)["param"] == "role"


async def test_an_admin_key_acts_with_its_creators_current_role(org: Org):
    made = await org.http.post(
        "/v1/organization/admin_api_keys", json={"name": "bot"}, headers=org.headers("admin")
    )
    assert made.status_code == 201
    key = made.json()
    assert key["value"].startswith("sk-admin-") and key["redacted_value"] in (
        f"{key['value'][:12]}...{key['value'][-4:]}",
    )
    as_key = {"authorization": f"Bearer {key['value']}"}
    project = await org.http.post(
        "/v1/organization/projects", json={"name": "bots"}, headers=as_key
    )
    assert project.status_code == 201
    listed = await org.http.get("/v1/organization/admin_api_keys", headers=org.headers("owner"))
    assert key["value"] not in listed.text and key["id"] in listed.text

    admin_id = org.user_ids["admin"]
    await org.http.post(
        f"/v1/organization/users/{admin_id}", json={"role": "viewer"}, headers=org.headers("owner")
    )
    shrunk = await org.http.post("/v1/organization/projects", json={"name": "more"}, headers=as_key)
    assert shrunk.status_code == 403
    assert (await org.http.get("/v1/organization/users", headers=as_key)).status_code == 200

    await org.http.delete(f"/v1/organization/users/{admin_id}", headers=org.headers("owner"))
    removed = await org.http.get("/v1/organization/users", headers=as_key)
    assert removed.status_code == 401  # revoked with the membership
    revoked_key = (
        await org.http.post(
            "/v1/organization/admin_api_keys", json={}, headers=org.headers("owner")
        )
    ).json()
    await org.http.delete(
        f"/v1/organization/admin_api_keys/{revoked_key['id']}", headers=org.headers("owner")
    )
    dead = await org.http.get(
        "/v1/organization/users", headers={"authorization": f"Bearer {revoked_key['value']}"}
    )
    assert dead.status_code == 401 and error_of(dead)["code"] == "invalid_admin_key"


async def test_sign_in_out_and_throttling(org: Org):
    wrong = await org.http.post(
        "/v1/auth/sessions", json={"email": "owner@a.example", "password": "wrong one!"}
    )
    nobody = await org.http.post(
        "/v1/auth/sessions", json={"email": "nobody@a.example", "password": "wrong one!"}
    )
    assert wrong.status_code == nobody.status_code == 401
    assert error_of(wrong)["message"] == error_of(nobody)["message"]  # which emails exist: untold

    token = org.tokens["viewer"]
    out = await org.http.delete(
        "/v1/auth/sessions/current", headers={"authorization": f"Bearer {token}"}
    )
    assert out.status_code == 204
    ended = await org.http.get("/v1/organization/users", headers=org.headers("viewer"))
    assert ended.status_code == 401 and error_of(ended)["code"] == "invalid_session"

    for _ in range(10):
        await org.http.post(
            "/v1/auth/sessions", json={"email": "member@a.example", "password": "guess guess"}
        )
    throttled = await org.http.post(
        "/v1/auth/sessions", json={"email": "member@a.example", "password": PASSWORD}
    )
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


async def test_an_operator_names_the_organization_and_changes_are_audited(org: Org):
    headers = {"authorization": f"Bearer {org.tokens['operator']}"}
    unnamed = await org.http.get("/v1/organization/users", headers=headers)
    assert unnamed.status_code == 400 and error_of(unnamed)["param"] == "organization"
    member = await org.fresh_member()
    changed = await org.http.post(
        f"/v1/organization/users/{member}", json={"role": "admin"}, headers=org.headers("operator")
    )
    assert changed.status_code == 200
    async with org.db.read() as session:
        events = await audit.events(session, org.a, limit=5)
    change = next(e for e in events if e.action == "member.role")
    assert change.actor == "user:ops@platform" and change.target == member
    assert change.changes == {"role": ["member", "admin"]} and change.address
    log = await org.http.get("/v1/organization/audit_logs?limit=2", headers=org.headers("owner"))
    page = log.json()
    assert page["data"][0]["type"] == "member.role" and page["has_more"] is True
    after = await org.http.get(
        f"/v1/organization/audit_logs?limit=2&after={page['last_id']}", headers=org.headers("owner")
    )
    assert after.json()["data"][0]["id"] != page["data"][0]["id"]


HOSTILE = ["a\x00b@example.com", "x" * 300 + "@example.com", "\ud800@example.com", 12, None]


async def test_hostile_input_is_a_clean_400_or_404(org: Org):
    for email in HOSTILE:
        for path, body in (
            ("/v1/auth/sessions", {"email": email, "password": PASSWORD}),
            ("/v1/organization/invites", {"email": email, "role": "member"}),
        ):
            # As JSON escapes it: a lone surrogate is valid JSON, not UTF-8.
            headers = {**org.headers("owner"), "content-type": "application/json"}
            reply = await org.http.post(path, content=json.dumps(body), headers=headers)
            assert reply.status_code == 400, (path, email, reply.text)
            assert error_of(reply)["type"] == "invalid_request_error"
    huge = await org.http.post(
        "/v1/auth/sessions", json={"email": "owner@a.example", "password": "p" * 5000}
    )
    assert huge.status_code == 400
    for path in (
        "/v1/organization/users/user-%00",
        "/v1/organization/projects/%00",
        "/v1/organization/projects/" + "p" * 500 + "/api_keys",
    ):
        reply = await org.http.get(path, headers=org.headers("owner"))
        assert reply.status_code in (400, 404), (path, reply.text)
        error_of(reply)
    bad_limit = await org.http.get("/v1/organization/users?limit=0", headers=org.headers("owner"))
    assert bad_limit.status_code == 400
    bad_after = await org.http.get(
        "/v1/organization/users?after=nope", headers=org.headers("owner")
    )
    assert bad_after.status_code == 400
    short = await org.http.post("/v1/invites/accept", json={"token": "inv-x", "password": "short"})
    assert short.status_code in (400, 404)


async def test_two_acceptances_of_one_invitation_at_once_make_one_member(org: Org):
    made = await org.http.post(
        "/v1/organization/invites",
        json={"email": "twice@example.com", "role": "member"},
        headers=org.headers("owner"),
    )
    token = made.json()["token"]
    form = {"token": token, "password": PASSWORD}
    replies = await asyncio.gather(
        *(org.http.post("/v1/invites/accept", json=form) for _ in range(4))
    )
    assert sorted(r.status_code for r in replies)[0] == 201
    assert [r.status_code for r in replies].count(201) == 1, [r.text for r in replies]
    members = await org.http.get("/v1/organization/users?limit=100", headers=org.headers("owner"))
    assert [u["email"] for u in members.json()["data"]].count("twice@example.com") == 1


async def test_a_member_makes_and_revokes_their_own_key_and_it_works(org: Org):
    path = f"/v1/organization/projects/{org.p1}/api_keys"
    made = await org.http.post(path, json={"name": "mine"}, headers=org.headers("member"))
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["owner"]["type"] == "user"
    assert key["owner"]["user"]["email"] == "member@a.example"
    chat = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}]}
    as_key = {"authorization": f"Bearer {key['value']}"}
    assert (
        await org.http.post("/v1/chat/completions", json=chat, headers=as_key)
    ).status_code == 200
    listed = await org.http.get(path, headers=org.headers("viewer"))
    assert key["id"] in listed.text and key["value"] not in listed.text
    gone = await org.http.delete(f"{path}/{key['id']}", headers=org.headers("member"))
    assert gone.status_code == 200
    refused = await org.http.post("/v1/chat/completions", json=chat, headers=as_key)
    assert refused.status_code == 401  # at once on this gateway


async def test_a_viewer_in_a_project_still_changes_nothing(org: Org):
    viewer = org.user_ids["viewer"]
    added = await org.http.post(
        f"/v1/organization/projects/{org.p1}/users",
        json={"user_id": viewer, "role": "owner"},
        headers=org.headers("owner"),
    )
    assert added.status_code == 201
    headers = org.headers("viewer")
    key = await org.http.post(
        f"/v1/organization/projects/{org.p1}/api_keys", json={}, headers=headers
    )
    budget = await org.http.post(
        f"/v1/organization/projects/{org.p1}", json={"daily_budget": 1}, headers=headers
    )
    assert key.status_code == budget.status_code == 403


async def test_two_owners_demoting_each_other_at_once_leave_an_owner(org: Org):
    second = org.user_ids["admin"]
    await org.http.post(
        f"/v1/organization/users/{second}", json={"role": "owner"}, headers=org.headers("owner")
    )
    first = org.user_ids["owner"]
    second_session = await org.sign_in("admin@a.example")
    replies = await asyncio.gather(
        org.http.post(
            f"/v1/organization/users/{second}",
            json={"role": "member"},
            headers=org.headers("owner"),
        ),
        org.http.post(
            f"/v1/organization/users/{first}",
            json={"role": "member"},
            headers={"authorization": f"Bearer {second_session}", "openai-organization": org.a},
        ),
    )
    codes = sorted(r.status_code for r in replies)
    assert codes[0] == 200 and codes[1] in (400, 403), [r.text for r in replies]
    users = await org.http.get("/v1/organization/users?limit=100", headers=org.headers("viewer"))
    assert [u["role"] for u in users.json()["data"]].count("owner") == 1


async def test_parallel_wrong_passwords_are_throttled_too(org: Org):
    guesses = await asyncio.gather(
        *(
            org.http.post(
                "/v1/auth/sessions", json={"email": " Viewer@A.example ", "password": "guess guess"}
            )
            for _ in range(16)
        )
    )
    codes = [r.status_code for r in guesses]
    assert codes.count(401) == 10 and codes.count(429) == 6, codes  # exactly, on any database


async def test_every_gateway_counts_the_same_failed_sign_ins(org: Org, tmp_path: Path):
    """A second gateway on the same database: guesses spread over both are
    throttled as if they met one; an expired failure is forgotten, and the
    guessed email is not stored."""
    second = create_app(
        Settings(data_dir=tmp_path / "second"), engines={EMBEDDED_ENGINE: ScriptedEngine()},
        db=org.db,
    )  # fmt: skip
    guess = {"email": "admin@a.example", "password": "guess guess"}
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://second") as other:
            for gateway in (org.http, other) * 5:  # ten failures, five on each
                failed = await gateway.post("/v1/auth/sessions", json=guess)
                assert failed.status_code == 401, failed.text
            for gateway in (org.http, other):
                right = await gateway.post(
                    "/v1/auth/sessions", json={**guess, "password": PASSWORD}
                )
                assert right.status_code == 429, right.text
                assert 0 < int(right.headers["retry-after"]) <= 900
    async with org.db.read() as session:
        stored = list(await session.scalars(select(FailedSignIn)))
    assert len(stored) == 10  # the refusals were not counted as guesses
    assert all("admin@a.example" not in row.email_hash for row in stored)
    # Fifteen minutes on, the failures are gone: the next failure sweeps them.
    async with org.db.transaction() as session:
        await session.execute(
            update(FailedSignIn).values(failed_at=utcnow() - timedelta(minutes=16))
        )
    right = await org.http.post("/v1/auth/sessions", json={**guess, "password": PASSWORD})
    assert right.status_code == 201, right.text
    async with org.db.read() as session:
        assert list(await session.scalars(select(FailedSignIn))) == []  # swept, then forgiven


async def test_a_flood_of_sign_ins_is_refused_before_it_writes(
    org: Org, monkeypatch: pytest.MonkeyPatch
):
    """Beyond what the password pool may queue, a sign-in is a 429 that has
    written nothing; one that wrote its attempt is checked, never refused by
    the pool after (its failure would count without a password checked)."""
    monkeypatch.setattr(passwords, "MAX_WAITING", 3)
    flood = await asyncio.gather(
        *(
            org.http.post(
                "/v1/auth/sessions", json={"email": f"x{n}@a.example", "password": "guess guess"}
            )
            for n in range(40)
        )
    )
    codes = [r.status_code for r in flood]
    assert set(codes) == {401, 429} and codes.count(401) >= 3, codes
    assert all("Too many sign-ins at once" in r.text for r in flood if r.status_code == 429)
    async with org.db.read() as session:
        rows = list(await session.scalars(select(FailedSignIn)))
    assert len(rows) == codes.count(401)  # a failure row for each guess checked, no other


async def test_what_a_removed_member_made_goes_with_them(org: Org):
    admin_id, member_id = org.user_ids["admin"], org.user_ids["member"]
    pending = await org.http.post(
        "/v1/organization/invites",
        json={"email": "alt@evil.example", "role": "admin"},
        headers=org.headers("admin"),
    )
    key = await org.http.post(
        f"/v1/organization/projects/{org.p1}/api_keys", json={}, headers=org.headers("member")
    )
    secret = key.json()["value"]
    chat = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}]}
    as_key = {"authorization": f"Bearer {secret}"}
    assert (
        await org.http.post("/v1/chat/completions", json=chat, headers=as_key)
    ).status_code == 200
    for user_id in (admin_id, member_id):
        gone = await org.http.delete(
            f"/v1/organization/users/{user_id}", headers=org.headers("owner")
        )
        assert gone.status_code == 200
    accepted = await org.http.post(
        "/v1/invites/accept", json={"token": pending.json()["token"], "password": PASSWORD}
    )
    assert accepted.status_code == 400 and error_of(accepted)["code"] == "invite_unavailable"
    assert (
        await org.http.post("/v1/chat/completions", json=chat, headers=as_key)
    ).status_code == 401


async def test_two_partial_project_updates_at_once_both_land(org: Org):
    path = f"/v1/organization/projects/{org.p1}"
    await asyncio.gather(
        org.http.post(path, json={"daily_budget": 5}, headers=org.headers("owner")),
        org.http.post(path, json={"monthly_budget": 50}, headers=org.headers("admin")),
    )
    project = (await org.http.get(path, headers=org.headers("viewer"))).json()
    assert (project["daily_budget"], project["monthly_budget"]) == (5.0, 50.0)
    renamed = await org.http.post(path, json={"name": "lab"}, headers=org.headers("owner"))
    assert renamed.json()["name"] == "lab" and renamed.json()["daily_budget"] == 5.0
    taken = await org.http.post(
        f"/v1/organization/projects/{org.p2}", json={"name": "lab"}, headers=org.headers("owner")
    )
    assert taken.status_code == 400 and error_of(taken)["param"] == "name"
    odd = await org.http.get(
        "/v1/organization/audit_logs?after=audit_log-%C2%B2", headers=org.headers("owner")
    )
    assert odd.status_code == 400
