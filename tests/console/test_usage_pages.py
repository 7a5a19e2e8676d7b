"""The usage, billing and rate-limit pages over HTTP: what each role sees
(a member only their projects; 403 and 404 where the service refuses), the
filters, the CSV export (its headers, its cells made safe for spreadsheets),
the ledger by day, the limits with what counts against them now, and Chinese."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from html import unescape
from typing import Any

from sqlalchemy import Engine, event

from moonbase.auth.actor import SYSTEM
from moonbase.auth.project_policy import ProjectLimits
from tests.console.harness import Visitor, signed_in
from tests.organization.harness import Org

CHAT = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def _key(owner: Visitor, project: str, name: str) -> str:
    created = await owner.post("/console/keys", {"project": project, "name": name})
    secret = re.search(r'value="(sk-[A-Za-z0-9]+)"', created.text)
    assert secret is not None, created.text
    return secret.group(1)


async def _chat(org: Org, secret: str, times: int, model: str = "moonshot-v1-8k") -> None:
    for _ in range(times):
        reply = await org.http.post(
            "/v1/chat/completions",
            json={**CHAT, "model": model},
            headers={"authorization": f"Bearer {secret}"},
        )
        assert reply.status_code == 200, reply.text


def _chart(html: str) -> dict:  # type: ignore[type-arg]
    found = re.search(r'id="usage-chart-data">(.*?)</script>', html, re.S)
    assert found is not None, html
    return json.loads(found.group(1))  # type: ignore[no-any-return]


async def test_usage_by_role_filters_and_empty_states(org: Org):
    owner = await signed_in(org, "owner")
    empty = await owner.get("/console/usage")
    assert empty.status_code == 200 and "No usage in this range." in empty.text
    assert 'href="/console/keys"' in empty.text  # what to do next
    p1 = await _key(owner, org.p1, "=cmd|' /C calc'!A0")  # a hostile name, for the CSV
    p2 = await _key(owner, org.p2, "p2-key")
    await _chat(org, p1, 3)
    await _chat(org, p2, 2, "moonshot-v1-32k")
    page = await owner.get("/console/usage")
    assert re.search(r'data-testid="total-requests">5<', page.text), page.text
    chart = _chart(page.text)
    assert len(chart["labels"]) == 30
    assert {s["name"]: s["values"][-1] for s in chart["series"]} == {
        "moonshot-v1-8k": 3, "moonshot-v1-32k": 2,
    }  # fmt: skip
    # Filters: a project, a model, a range in the past, grouped by key.
    only_p2 = await owner.get(f"/console/usage?project={org.p2}&group=key")
    assert 'data-testid="total-requests">2<' in only_p2.text and "p2-key" in only_p2.text
    by_model = await owner.get("/console/usage?model=moonshot-v1-8k")
    assert 'data-testid="total-requests">3<' in by_model.text
    past = await owner.get("/console/usage?from=2020-01-01&to=2020-01-31")
    assert "No usage in this range." in past.text and "Nothing matches" not in past.text
    none = await owner.get("/console/usage?model=kimi-latest")
    assert "Nothing matches these filters" in none.text
    bad = await owner.get("/console/usage?from=2020-02-01&to=2020-01-01")
    assert bad.status_code == 400 and "To: the range ends before it starts" in unescape(bad.text)
    wide = await owner.get("/console/usage?from=2020-01-01&to=2022-01-01")
    assert wide.status_code == 400 and "at most 366 days" in wide.text
    # A member sees their project (P1) only; P2 does not exist for them.
    member = await signed_in(org, "member")
    mine = await member.get("/console/usage")
    assert 'data-testid="total-requests">3<' in mine.text and "p2-key" not in mine.text
    assert (await member.get(f"/console/usage?project={org.p2}")).status_code == 404
    assert (await member.get(f"/console/usage.csv?project={org.p2}")).status_code == 404
    outsider = await signed_in(org, "outsider")
    assert (await outsider.get(f"/console/usage?project={org.p1}")).status_code == 404
    assert "No usage in this range." in (await outsider.get("/console/usage")).text
    for who in ("admin", "viewer", "operator"):
        seen = await (await signed_in(org, who)).get("/console/usage")
        assert 'data-testid="total-requests">5<' in seen.text, who


async def test_the_csv_export_has_the_filters_headers_and_safe_cells(org: Org):
    owner = await signed_in(org, "owner")
    hostile = "=cmd|' /C calc'!A0"
    secret = await _key(owner, org.p1, hostile)
    await _chat(org, secret, 2)
    await _chat(org, await _key(owner, org.p2, "@other"), 1, "moonshot-v1-32k")
    page = await owner.get(f"/console/usage?project={org.p1}&days=7")
    link = re.search(r'href="(/console/usage\.csv\?[^"]+)"', page.text)
    assert link is not None
    url = unescape(link.group(1))
    assert f"project={org.p1}" in url and "days=7" in url
    reply = await owner.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = reply.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="moonbase-usage-') and ".csv" in disposition
    assert reply.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert rows[0][:6] == ["date", "project_id", "project", "api_key_id", "api_key", "model"]
    assert len(rows) == 2  # P1's one group only
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["api_key"] == "'" + hostile  # never a formula
    assert line["project_id"] == org.p1 and line["requests"] == "2"
    assert line["model"] == "moonshot-v1-8k" and float(line["cost_cny"]) > 0
    everything = await owner.get("/console/usage.csv")
    names = [r[4] for r in csv.reader(io.StringIO(everything.content.decode("utf-8-sig")))]
    assert "'@other" in names
    # Anonymous: sign in first, never the data.
    anonymous = await Visitor(org).get("/console/usage.csv")
    assert anonymous.status_code == 303


async def test_usage_in_chinese(org: Org):
    owner = await signed_in(org, "owner", **{"accept-language": "zh-CN"})
    await _chat(org, await _key(owner, org.p1, "k"), 1)
    page = await owner.get("/console/usage?days=7")
    assert "用量" in page.text and "最近 7 天（UTC）" in page.text and "下载 CSV" in page.text
    assert re.search(r"\d+年\d+月\d+日", page.text)
    assert "月" in _chart(page.text)["labels"][0]
    empty = await owner.get("/console/usage?from=2020-01-01&to=2020-01-02")
    assert "此时间范围内没有用量。" in empty.text


def _services(org: Org) -> Any:
    return org.http._transport.app.state.services  # type: ignore[attr-defined]


async def _credit(org: Org, kind: str, yuan: str, reason: str) -> None:
    """The operator's top-up or voucher (as the admin API makes it)."""
    await _services(org).billing.credit(org.a, kind, Decimal(yuan), reason)


async def test_billing_shows_entries_and_charges_per_day_by_role(org: Org):
    owner = await signed_in(org, "owner")
    await _credit(org, "topup", "120.5", "wire 42")
    await _credit(org, "voucher", "8", "welcome")
    await _chat(org, await _key(owner, org.p1, "billing"), 4)
    page = await owner.get("/console/billing")
    assert page.status_code == 200
    text = unescape(page.text)
    assert "Top-up" in text and "wire 42" in text and "¥120.50" in text
    assert "Voucher" in text and "welcome" in text and "¥8.00" in text
    assert text.count("requests this day") == 1 and "4 requests this day" in text
    assert "kind-charges" in page.text and 'rel="next"' not in page.text
    for who in ("admin", "viewer", "operator"):
        assert (await (await signed_in(org, who)).get("/console/billing")).status_code == 200, who
    member = await signed_in(org, "member")  # the ledger holds other projects' charges
    refused = await member.get("/console/billing")
    assert refused.status_code == 403 and "does not allow this" in refused.text
    outsider = await (await signed_in(org, "outsider")).get("/console/billing")
    assert outsider.status_code == 200 and "wire 42" not in outsider.text  # its own: none
    assert "No entries yet." in outsider.text and "top up" in outsider.text
    bad = await owner.get("/console/billing?before=yesterday")
    assert bad.status_code == 400 and "Before:" in unescape(bad.text)
    older = await owner.get("/console/billing?before=2020-01-01")
    assert "Nothing older." in older.text


async def test_billing_pages_by_whole_days(org: Org):
    from datetime import UTC, date, datetime, timedelta

    from moonbase.store.tables import LedgerEntry, UsageDaily

    today = datetime.now(UTC).date()
    async with org.db.transaction() as session:
        for n in range(70):  # 70 days of charges, and a top-up on 70 days
            day = today - timedelta(days=n)
            session.add(
                UsageDaily(
                    account_id=org.a,
                    day=day,
                    project_id=org.p1,
                    api_key_id="",
                    model="moonshot-v1-8k",
                    requests=n + 1,
                    prompt_tokens=1,
                    cached_tokens=0,
                    completion_tokens=1,
                    cost_micro=1000 * (n + 1),
                )
            )
            session.add(LedgerEntry(account_id=org.a, kind="topup", cash_micro=10**6,
                                    voucher_micro=0, reason=f"day {n}", reference=None,
                                    created_at=datetime.combine(day, datetime.min.time(), UTC)
                                    + timedelta(hours=12)))  # fmt: skip
    owner = await signed_in(org, "owner")
    seen: list[str] = []
    path = "/console/billing"
    for _ in range(10):
        page = await owner.get(path)
        assert page.status_code == 200
        rows = re.findall(r"day (\d+)|(\d+) requests this day", page.text)
        assert len(rows) <= 52  # a page: about 50 rows, whole days
        seen += [f"d{a}" if a else f"c{b}" for a, b in rows]
        found = re.search(r'href="(/console/billing\?before=[0-9-]+)" rel="next"', page.text)
        if found is None:
            break
        path = found.group(1)
    assert len(seen) == 140 and len(set(seen)) == 140  # every entry and day once
    assert seen[:3] == ["c1", "d0", "c2"]  # newest first; a day's charges, then its entries
    assert date.fromisoformat(path.rsplit("=", 1)[1]) < today


async def test_rate_limits_show_tier_use_and_projects_by_role(org: Org):
    await _services(org).admin.set_project_limits(org.p1, ProjectLimits(rpm=2), SYSTEM)
    owner = await signed_in(org, "owner")
    await _chat(org, await _key(owner, org.p1, "limits"), 1)
    page = await owner.get("/console/limits")
    assert page.status_code == 200
    assert re.search(r'data-testid="tier">Tier \d<', page.text)
    row = re.search(r'data-limit="rpm">(.*?)</tr>', page.text, re.S)
    assert row is not None and re.search(r">1 <span", row.group(1)), row.group(1)  # 1 request
    assert "1 of 2" in page.text and "research" in page.text and "secret" in page.text
    member = await signed_in(org, "member")
    mine = await member.get("/console/limits")
    assert mine.status_code == 200 and "research" in mine.text and ">secret<" not in mine.text
    for who in ("admin", "viewer", "viewer_in_p1", "outsider", "operator"):
        assert (await (await signed_in(org, who)).get("/console/limits")).status_code == 200, who
    chinese = await signed_in(org, "viewer", **{"accept-language": "zh-CN"})
    zh = await chinese.get("/console/limits")
    assert "速率限制" in zh.text and "每分钟请求数" in zh.text and re.search(r"等级 \d", zh.text)
    zh_billing = await chinese.get("/console/billing")
    assert "收支明细" in zh_billing.text


async def test_a_project_with_more_keys_than_one_page_shows_and_filters_every_key(org: Org):
    """The console reads whole listings: a key beyond the API's first page
    (100) is on the keys page, named in usage, and a usage filter of its own."""
    owner_api = org.headers("owner")
    created = []
    for i in range(101):
        reply = await org.http.post(
            f"/v1/organization/projects/{org.p1}/api_keys", json={"name": f"bulk-{i:03}"},
            headers=owner_api,
        )  # fmt: skip
        assert reply.status_code == 201, reply.text
        created.append(reply.json())
    first_page = await org.http.get(
        f"/v1/organization/projects/{org.p1}/api_keys?limit=100", headers=owner_api
    )
    assert first_page.json()["has_more"] is True
    on_first = {key["id"] for key in first_page.json()["data"]}
    beyond = next(key for key in created if key["id"] not in on_first)
    await _chat(org, beyond["value"], 1)

    rest = await org.http.get(
        f"/v1/organization/projects/{org.p1}/api_keys?limit=100&after={first_page.json()['last_id']}",
        headers=owner_api,
    )
    assert [key["id"] for key in rest.json()["data"]] == [beyond["id"]]
    assert rest.json()["has_more"] is False
    for after in (created[0]["id"] + "x", "ключ", org.api_key):  # not in this list: a 400
        refused = await org.http.get(
            f"/v1/organization/projects/{org.p1}/api_keys", params={"after": after},
            headers=owner_api,
        )  # fmt: skip
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"].get("param") == "after", (after, refused.text)

    # The console pages the keys too: a hundred, then a link to the rest.
    owner = await signed_in(org, "owner")
    listing = await owner.get(f"/console/keys?project={org.p1}")
    assert listing.status_code == 200 and beyond["name"] not in listing.text
    more = re.search(r'<a href="([^"]+)" rel="next">More keys</a>', listing.text)
    assert more is not None, listing.text
    following = await owner.get(unescape(more.group(1)))
    assert following.status_code == 200 and beyond["name"] in following.text
    assert 'rel="next"' not in following.text and "First keys" in following.text
    shown = listing.text + following.text
    assert all(key["name"] in shown for key in created)
    usage = await owner.get(f"/console/usage?key={beyond['id']}&group=key")
    assert usage.status_code == 200, usage.text
    assert 'data-testid="total-requests">1<' in usage.text and beyond["name"] in usage.text
    csv_reply = await owner.get(f"/console/usage.csv?key={beyond['id']}")
    assert csv_reply.status_code == 200 and beyond["id"] in csv_reply.text


async def test_the_keys_and_usage_pages_read_keys_and_creators_once_however_many_projects(
    org: Org,
):
    """Each page reads the keys of every visible project in one query and
    their creators in one more: six more projects, each with a key made by
    someone else, add no read."""
    owner = await signed_in(org, "owner")

    async def reads_of(path: str) -> dict[str, int]:
        counted = {"api_keys": 0, "users": 0}

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            for table in counted:
                if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
                    counted[table] += 1

        event.listen(Engine, "before_cursor_execute", count)  # every engine: reads have their own
        try:
            reply = await owner.get(path)
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        assert reply.status_code == 200, reply.text
        return counted

    await _key(owner, org.p1, "first")
    pages = ("/console/keys", "/console/usage?group=key")
    before = {path: await reads_of(path) for path in pages}
    names, made_ids = [], []
    for i in range(6):
        made = await org.http.post(
            "/v1/organization/projects", json={"name": f"team-{i}"}, headers=org.headers("owner")
        )
        assert made.status_code == 201, made.text
        made_ids.append(made.json()["id"])
        email = f"maker-{i}@a.example"
        await org.add_user(email, org.a, "admin")
        maker = {"authorization": f"Bearer {await org.sign_in(email)}",
                 "openai-organization": org.a}  # fmt: skip
        key = await org.http.post(
            f"/v1/organization/projects/{made.json()['id']}/api_keys",
            json={"name": f"key-of-team-{i}"}, headers=maker,
        )  # fmt: skip
        assert key.status_code == 201, key.text
        names.append(f"key-of-team-{i}")
    after = {path: await reads_of(path) for path in pages}
    assert after == before, (before, after)
    assert all(reads["api_keys"] == 1 for reads in after.values()), after
    listing = await owner.get("/console/keys")
    assert all(name in listing.text for name in names)
    for i, project_id in enumerate(made_ids):  # each key still names who made it
        keys = await org.http.get(
            f"/v1/organization/projects/{project_id}/api_keys", headers=org.headers("owner")
        )
        assert [k["owner"]["user"]["email"] for k in keys.json()["data"]] == [
            f"maker-{i}@a.example"
        ]
