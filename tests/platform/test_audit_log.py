"""The audit log through the admin API: every change to keys, money and
limits records who made it (the admin API, from which address), when, and
what changed, in the change's own transaction."""

from __future__ import annotations

import httpx

from tests.platform.test_admin_api import ADMIN, http  # noqa: F401 (a fixture)


async def test_every_admin_change_is_audited(http: httpx.AsyncClient):  # noqa: F811
    account = (await http.post("/admin/accounts", json={"name": "acme"}, headers=ADMIN)).json()
    acct = account["id"]
    made = await http.post(f"/admin/accounts/{acct}/keys", json={"name": "ci"}, headers=ADMIN)
    key = made.json()
    steps = [
        ("put", f"/admin/keys/{key['id']}/restrictions", {"allowed_ips": ["10.0.0.0/8"]}),
        ("post", f"/admin/keys/{key['id']}/disable", None),
        ("post", f"/admin/keys/{key['id']}/enable", None),
        ("post", f"/admin/keys/{key['id']}/rotate", {"grace_s": 60}),
        ("post", f"/admin/accounts/{acct}/topup", {"amount": "3.5", "reason": "invoice 7"}),
        ("post", f"/admin/accounts/{acct}/vouchers", {"amount": "1"}),
        ("put", f"/admin/accounts/{acct}/limits", {"tier": 2, "rpm": 9}),
        ("delete", f"/admin/keys/{key['id']}", None),
    ]
    for method, path, body in steps:
        kwargs = {"json": body} if body is not None else {}
        response = await http.request(method.upper(), path, headers=ADMIN, **kwargs)
        assert response.status_code == 200, (path, response.text)
    log = await http.get("/admin/audit", params={"account": "acme"}, headers=ADMIN)
    assert log.status_code == 200
    events = list(reversed(log.json()))
    assert [e["action"] for e in events] == [
        "account.create", "key.create", "key.restrict", "key.disable", "key.enable",
        "key.rotate", "account.topup", "account.voucher", "account.limits", "key.revoke",
    ]  # fmt: skip
    assert {e["actor"] for e in events} == {"admin-api"}
    assert {e["address"] for e in events} == {"127.0.0.1"}
    assert all(e["account_id"] == acct and e["at"] for e in events)
    changes = {e["action"]: e["changes"] for e in events}
    assert changes["key.restrict"]["allowed_ips"] == [None, ["10.0.0.0/8"]]
    assert changes["key.disable"] == {"disabled": [False, True]}
    assert changes["account.topup"]["reason"] == "invoice 7"
    assert changes["account.topup"]["cash_balance"] == "3.5"
    assert changes["account.limits"] == {"tier": [None, 2], "rpm": [None, 9]}
    assert key["key"] not in str(changes)  # the log shows the display form, never a secret
    everything = (await http.get("/admin/audit", params={"limit": 1000}, headers=ADMIN)).json()
    assert everything[-1]["actor"] == "system"  # the first account, made at start


async def test_a_refused_change_leaves_no_record(http: httpx.AsyncClient):  # noqa: F811
    before = len((await http.get("/admin/audit", params={"limit": 1000}, headers=ADMIN)).json())
    refused = await http.put("/admin/keys/key-nope/restrictions", json={}, headers=ADMIN)
    assert refused.status_code == 404
    bad = await http.post("/admin/accounts/default/topup", json={"amount": "-1"}, headers=ADMIN)
    assert bad.status_code == 400
    after = len((await http.get("/admin/audit", params={"limit": 1000}, headers=ADMIN)).json())
    assert after == before
