"""Every console action, as every kind of person: the page never decides, the
management service does (auth/roles.py), so what the API refuses the console
refuses too: 403 with a page naming the role, or 404 for what the person
cannot see. Success is a redirect to the result (303), or the page showing a
new secret (200)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest

from moonbase import admin
from tests.console.harness import Visitor, signed_in
from tests.organization.harness import Org

WHO = ("owner", "admin", "member", "project_owner", "viewer", "viewer_in_p1", "outsider",
       "operator")  # fmt: skip
MANAGERS_OF_P1 = {"owner": 303, "admin": 303, "project_owner": 303, "operator": 303,
                  "member": 403, "viewer": 403, "viewer_in_p1": 403, "outsider": 404}  # fmt: skip


async def _owner_key(org: Org) -> str:
    """A key of P1 made by the organisation's owner (not by the visitor)."""
    owner = await signed_in(org, "owner")
    await owner.post("/console/keys", {"project": org.p1, "name": "owner's"})
    listing = await owner.get(f"/console/keys?project={org.p1}")
    ids = re.findall(rf"/console/keys/{org.p1}/([^/]+)/disable", listing.text)
    return ids[-1]


Action = Callable[[Org, Visitor], Awaitable[int]]


async def create_project(org: Org, v: Visitor) -> int:
    return (await v.post("/console/projects", {"name": f"p-{id(v)}", "daily": "5"})).status_code


async def set_budgets(org: Org, v: Visitor) -> int:
    reply = await v.post(f"/console/projects/{org.p1}/budgets", {"daily": "3", "monthly": ""})
    return reply.status_code


async def set_models(org: Org, v: Visitor) -> int:
    reply = await v.post(
        f"/console/projects/{org.p1}/models", {"mode": "only", "models": ["moonshot-v1-8k"]}
    )
    return reply.status_code


async def add_member(org: Org, v: Visitor) -> int:
    user = await org.fresh_member()
    reply = await v.post(f"/console/projects/{org.p1}/members", {"user_id": user, "role": "member"})
    return reply.status_code


async def remove_member(org: Org, v: Visitor) -> int:
    user = await org.fresh_member()
    added = await org.http.post(
        f"/v1/organization/projects/{org.p1}/users",
        json={"user_id": user, "role": "member"},
        headers=org.headers("owner"),
    )
    assert added.status_code == 201
    return (await v.post(f"/console/projects/{org.p1}/members/{user}/remove")).status_code


def key_action(verb: str, data: dict[str, str] | None = None) -> Action:
    async def act(org: Org, v: Visitor) -> int:
        key_id = await _owner_key(org)
        return (await v.post(f"/console/keys/{org.p1}/{key_id}/{verb}", data)).status_code

    act.__name__ = f"{verb}_key"
    return act


ACTIONS: dict[str, tuple[Action, dict[str, int]]] = {
    "create_project": (create_project, {"owner": 303, "admin": 303, "operator": 303,
                                        "member": 403, "project_owner": 403, "viewer": 403,
                                        "viewer_in_p1": 403, "outsider": 303}),  # its own org
    "set_budgets": (set_budgets, MANAGERS_OF_P1),
    "set_models": (set_models, MANAGERS_OF_P1),
    "add_member": (add_member, MANAGERS_OF_P1),
    "remove_member": (remove_member, MANAGERS_OF_P1),
    # Others' keys: managers only (a member may change their own: below).
    "disable_key": (key_action("disable"), MANAGERS_OF_P1),
    "enable_key": (key_action("enable"), MANAGERS_OF_P1),
    "rotate_key": (key_action("rotate", {"grace": "3600"}), {**MANAGERS_OF_P1, "owner": 200,
                   "admin": 200, "project_owner": 200, "operator": 200}),
    "revoke_key": (key_action("revoke"), MANAGERS_OF_P1),
}  # fmt: skip


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_each_console_action_as_each_role(org: Org, action: str):
    act, expected = ACTIONS[action]
    visitors = {who: await signed_in(org, who) for who in WHO}
    for who in WHO:
        status = await act(org, visitors[who])
        assert status == expected[who], (action, who, status)
    forbidden = await act(org, visitors["viewer"])
    assert forbidden == 403
    page = await visitors["viewer"].get(f"/console/projects/{org.p1}")
    assert page.status_code == 200  # a viewer reads it all, changes nothing


async def test_creating_keys_by_role_and_project(org: Org):
    expected = {"owner": 200, "admin": 200, "member": 200, "project_owner": 200,
                "operator": 200, "viewer": 403, "viewer_in_p1": 403, "outsider": 404}  # fmt: skip
    for who, status in expected.items():
        visitor = await signed_in(org, who)
        reply = await visitor.post("/console/keys", {"project": org.p1, "name": who})
        assert reply.status_code == status, (who, reply.status_code)
        if status == 403:
            assert "does not allow this" in reply.text
    member = await signed_in(org, "member")  # not in P2: it does not exist for them
    assert (await member.post("/console/keys", {"project": org.p2})).status_code == 404


async def test_a_member_changes_their_own_key_but_not_others(org: Org):
    member = await signed_in(org, "member")
    await member.post("/console/keys", {"project": org.p1, "name": "mine"})
    listing = await member.get(f"/console/keys?project={org.p1}")
    mine = sorted(set(re.findall(rf"/console/keys/{org.p1}/([^/]+)/disable", listing.text)))
    assert len(mine) == 1  # the owner's keys show no buttons to them
    for verb in ("disable", "enable", "rotate", "revoke"):
        reply = await member.post(f"/console/keys/{org.p1}/{mine[0]}/{verb}", {"grace": "0"})
        assert reply.status_code in (200, 303), (verb, reply.status_code)
    others = await admin.create_key(org.db, "default", name="cli", project=org.p1)
    for verb in ("disable", "rotate", "revoke"):
        reply = await member.post(f"/console/keys/{org.p1}/{others.id}/{verb}", {"grace": "0"})
        assert reply.status_code == 403, verb
