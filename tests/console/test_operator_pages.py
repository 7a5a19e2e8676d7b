"""The operator's pages (organisations, engines, audit log): the platform
operator uses them; every other person, whatever their role, is refused by
the service (403), not by a hidden link. A top-up reaches the member's
overview at once, and lands in the audit log with who made it."""

from __future__ import annotations

import re

from tests.console.harness import signed_in
from tests.organization.harness import Org

ORGS = "/console/operator/organizations"
NOT_OPERATORS = ("owner", "admin", "member", "project_owner", "viewer", "viewer_in_p1",
                 "outsider")  # fmt: skip


async def test_every_operator_page_and_action_refuses_everyone_else(org: Org):
    pages = (ORGS, f"{ORGS}/{org.b}", "/console/operator/engines", "/console/operator/audit")
    actions = (
        (ORGS, {"name": "sneaky"}),
        (f"{ORGS}/{org.b}/credit", {"kind": "topup", "amount": "100"}),
        (f"{ORGS}/{org.b}/limits", {"tier": "5"}),
    )
    for who in NOT_OPERATORS:
        visitor = await signed_in(org, who)
        home = await visitor.get("/console")
        assert ORGS not in home.text  # no link, and no page either:
        for path in pages:
            reply = await visitor.get(path)
            assert reply.status_code == 403, (who, path, reply.status_code)
            assert "does not allow this" in reply.text
        for path, data in actions:
            reply = await visitor.post(path, data)
            assert reply.status_code == 403, (who, path, reply.status_code)
    b = await org.http.get("/v1/organization/projects", headers=org.headers("outsider"))
    assert b.status_code == 200
    operator = await signed_in(org, "operator")
    listing = await operator.get(ORGS)
    assert "sneaky" not in listing.text and "¥0.00" in listing.text  # nothing was changed
    for path in pages:
        assert (await operator.get(path)).status_code == 200, path


async def test_the_operator_tops_up_and_the_member_sees_the_new_balance(org: Org):
    member = await signed_in(org, "outsider")  # an admin of organisation B
    before = await member.get("/console")
    assert 'data-testid="cash">¥0.00<' in before.text
    operator = await signed_in(org, "operator")
    page = await operator.get(f"{ORGS}/{org.b}")
    assert "beta" in page.text
    topped = await operator.post(
        f"{ORGS}/{org.b}/credit", {"kind": "topup", "amount": "1,250.50", "reason": "invoice 7"}
    )
    assert topped.status_code == 303 and topped.headers["location"].endswith("done=topup")
    voucher = await operator.post(f"{ORGS}/{org.b}/credit", {"kind": "voucher", "amount": "20"})
    assert voucher.status_code == 303
    shown = await operator.get(topped.headers["location"])
    assert "Topped up." in shown.text and "¥1,250.50" in shown.text and "¥20.00" in shown.text
    after = await member.get("/console")
    assert 'data-testid="cash">¥1,250.50<' in after.text
    assert 'data-testid="voucher">¥20.00<' in after.text
    chinese = await operator.get(f"{ORGS}/{org.b}", headers={"accept-language": "zh-CN"})
    assert "充值或发放代金券" in chinese.text and "¥1,250.50" in chinese.text

    log = await operator.get(f"/console/operator/audit?org={org.b}&action=account.")
    assert "account.topup" in log.text and "account.voucher" in log.text
    assert "user:ops@platform" in log.text and "invoice 7" in log.text
    only_vouchers = await operator.get("/console/operator/audit?action=account.voucher")
    assert "account.voucher" in only_vouchers.text and "account.topup" not in only_vouchers.text
    nobody = await operator.get("/console/operator/audit?actor=nobody-at-all")
    assert "No changes match." in nobody.text


async def test_creating_an_organisation_and_its_limits_with_errors_that_say_what_to_fix(org: Org):
    operator = await signed_in(org, "operator")
    created = await operator.post(ORGS, {"name": "gamma"})
    assert created.status_code == 303
    path = created.headers["location"].split("?")[0]
    taken = await operator.post(ORGS, {"name": "gamma"})
    assert taken.status_code == 400 and "exists" in taken.text and 'value="gamma"' in taken.text
    limits = await operator.post(f"{path}/limits", {"tier": "3", "rpm": "1,000", "tpd": ""})
    assert limits.status_code == 303
    page = await operator.get(path)
    assert 'name="tier" inputmode="numeric" value="3"' in page.text
    assert 'name="rpm" inputmode="numeric" value="1000"' in page.text
    bad = await operator.post(f"{path}/limits", {"tier": "9"})
    assert bad.status_code == 400 and "Tier: must be between 0 and 5" in bad.text
    amount = await operator.post(f"{path}/credit", {"kind": "topup", "amount": "ten"})
    assert amount.status_code == 400 and "Amount:" in amount.text
    kind = await operator.post(f"{path}/credit", {"kind": "gift", "amount": "10"})
    assert kind.status_code == 400
    listing = await operator.get(ORGS)
    assert "gamma" in listing.text


async def test_the_engines_page_and_the_audit_log_pages(org: Org):
    operator = await signed_in(org, "operator")
    engines = await operator.get("/console/operator/engines")
    assert engines.status_code == 200
    assert "ready" in engines.text and "moonshot-v1-8k" in engines.text
    assert 'data-testid="queued">0<' in engines.text and "No errors." in engines.text
    for n in range(55):  # more than a page of changes
        await operator.post(f"{ORGS}/{org.b}/credit", {"kind": "voucher", "amount": str(n + 1)})
    first = await operator.get("/console/operator/audit")
    assert first.text.count("<tr>") == 1 + 50  # the header, then a page
    older = re.search(r'href="(/console/operator/audit\?before=\d+)" rel="next"', first.text)
    assert older is not None
    second = await operator.get(older.group(1))
    assert second.status_code == 200 and "Newest" in second.text
    assert (await operator.get("/console/operator/audit?before=x")).status_code == 400
