"""The pages themselves: what they show (balances, today's requests and the
30-day chart from the rollups), empty states that say what to do, errors
that say what to fix, and Chinese."""

from __future__ import annotations

import json
import re
from html import unescape

from tests.console.harness import Visitor, signed_in
from tests.organization.harness import Org

CHAT = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def test_the_overview_shows_balances_requests_today_and_the_chart(org: Org):
    owner = await signed_in(org, "owner")
    empty = await owner.get("/console")
    assert "No requests in the last 30 days." in empty.text and "Create an API key" in empty.text
    created = await owner.post("/console/keys", {"project": org.p1, "name": "usage"})
    secret = re.search(r'value="(sk-[A-Za-z0-9]+)"', created.text)
    assert secret is not None
    for _ in range(3):
        reply = await org.http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {secret.group(1)}"},
        )
        assert reply.status_code == 200, reply.text
    page = await owner.get("/console")
    assert re.search(r'data-testid="requests-today">3<', page.text), page.text
    assert re.search(r'data-testid="voucher">¥[0-9,]+\.\d\d<', page.text)
    data = re.search(r'<script type="application/json" id="usage-chart-data">(.*?)</script>',
                     page.text, re.S)  # fmt: skip
    assert data is not None
    chart = json.loads(data.group(1))
    assert len(chart["labels"]) == 30
    assert chart["series"] == [{"name": "moonshot-v1-8k", "values": [0] * 29 + [3]}]
    # A member of P2 only would see none of it: the member is in P1, which it is.
    member = await signed_in(org, "member")
    assert 'data-testid="requests-today">3<' in (await member.get("/console")).text


async def test_empty_states_and_errors_say_what_to_do(org: Org):
    viewer = await signed_in(org, "viewer")
    keys = await viewer.get(f"/console/keys?project={org.p2}")  # a project without keys
    assert "No API keys here yet." in keys.text and "Your role cannot create keys" in keys.text
    assert 'method="post" action="/console/keys"' not in keys.text  # no form they cannot use
    owner = await signed_in(org, "owner")
    bad = await owner.post("/console/projects", {"name": "b", "daily": "ten yuan"})
    assert bad.status_code == 400 and "Daily budget: 'ten yuan' is not an amount" in unescape(
        bad.text
    )
    assert 'value="ten yuan"' in bad.text  # what was typed stays to be fixed
    past = await owner.post("/console/keys", {"project": org.p1, "expires": "2001-01-01"})
    assert past.status_code == 400 and "Expires: expires_at is in the past" in unescape(past.text)
    ips = await owner.post("/console/keys", {"project": org.p1, "ips": "10.0.0.0/8 nonsense"})
    assert ips.status_code == 400 and "Allowed IP addresses or networks:" in unescape(ips.text)
    missing = await owner.get("/console/projects/proj-nope")
    assert missing.status_code == 404 and "That no longer exists" in missing.text
    nowhere = await owner.get("/console/no/such/page")
    assert nowhere.status_code == 404 and "There is no such page" in nowhere.text


async def test_a_project_from_creation_to_budgets_people_and_models(org: Org):
    owner = await signed_in(org, "owner")
    created = await owner.post("/console/projects", {"name": "web", "monthly": "100"})
    assert created.status_code == 303
    path = created.headers["location"]
    page = await owner.get(path)
    assert "Project created." in page.text and "Nobody is in this project yet." in page.text
    project_id = path.split("/")[3].split("?")[0]
    await owner.post(f"/console/projects/{project_id}/budgets", {"daily": "2.5", "monthly": ""})
    await owner.post(
        f"/console/projects/{project_id}/members",
        {"user_id": org.user_ids["member"], "role": "owner"},
    )
    await owner.post(
        f"/console/projects/{project_id}/models", {"mode": "only", "models": ["kimi-k2.5"]}
    )
    api = await org.http.get(
        f"/v1/organization/projects/{project_id}", headers=org.headers("owner")
    )
    assert api.json()["daily_budget"] == 2.5 and api.json()["monthly_budget"] is None
    page = await owner.get(f"/console/projects/{project_id}")
    assert "member@a.example" in page.text
    assert re.search(r'value="kimi-k2.5" checked', page.text)
    none = await owner.post(f"/console/projects/{project_id}/models", {"mode": "only"})
    assert none.status_code == 400 and "choose at least one model" in none.text


async def test_chinese_from_accept_language_and_the_switch(org: Org):
    visitor = Visitor(org, **{"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"})
    page = await visitor.get("/console/sign-in")
    assert '<html lang="zh-Hans">' in page.text and "登录 moonbase" in page.text
    await visitor.post("/console/sign-in", {"email": "owner@a.example", "password": "wrong one!"})
    await visitor.sign_in("owner@a.example")
    home = await visitor.get("/console")
    assert "概览" in home.text and "可用余额" in home.text and "退出所有设备" in home.text
    assert re.search(r'data-testid="voucher">¥[0-9,]+\.\d\d<', home.text)
    assert "年" in (await visitor.get("/console/projects")).text  # 2025年12月3日
    switched = await visitor.post("/console/language", {"language": "en", "next": "/console/keys"})
    assert switched.status_code == 303 and switched.headers["location"] == "/console/keys"
    assert "API keys" in (await visitor.get("/console/keys")).text
    back = await visitor.post("/console/language", {"language": "zh-CN", "next": "/console"})
    assert back.status_code == 303
    keys = await visitor.get("/console/keys")
    assert "API 密钥" in keys.text and "创建密钥" in keys.text
    wrong = await Visitor(org, **{"accept-language": "zh-CN"}).sign_in("owner@a.example", "nope")
    assert wrong.status_code == 401 and "邮箱或密码错误" in wrong.text


async def test_an_invitation_link_is_accepted_in_the_console(org: Org):
    created = await org.http.post(
        "/v1/organization/invites",
        json={"email": "newcomer@example.com", "role": "member",
              "projects": [{"id": org.p1, "role": "member"}]},
        headers=org.headers("admin"),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    link = created.json()["accept_url"]
    path, _, token = link.partition("#")
    assert path.endswith("/console/accept-invite")
    newcomer = Visitor(org)
    form = await newcomer.get("/console/accept-invite")
    assert form.status_code == 200 and "data-from-fragment" in form.text
    assert token not in form.text  # the fragment never reaches the server
    short = await newcomer.post("/console/accept-invite", {"token": token, "password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    joined = await newcomer.post(
        "/console/accept-invite", {"token": token, "password": "a long enough one", "name": "N"}
    )
    assert joined.status_code == 303, joined.text
    home = await newcomer.get("/console")
    assert home.status_code == 200 and "newcomer@example.com" in home.text
    again = await Visitor(org).post(
        "/console/accept-invite", {"token": token, "password": "x" * 12}
    )
    assert again.status_code in (400, 403)
    other = Visitor(org)
    await other.get("/console/accept-invite")
    used = await other.post("/console/accept-invite", {"token": token, "password": "x" * 12})
    assert used.status_code == 400 and "This invitation is not valid any more" in used.text
