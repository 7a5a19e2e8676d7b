"""Numbers and dates a client can write that Python reads too kindly: "²"
passes ``str.isdigit`` and breaks ``int`` (it was a 500), "٣" and "1_000"
pass ``int`` and ``Decimal`` (the console set a limit and a top-up from
them), a day near 9999-12-31 has no day after it (a 500), and an ``n`` of
2**63 multiplied the admission hold into a rate-limit refusal. Each is a 400
that names its field, through the API and the console alike."""

from __future__ import annotations

import time

from tests.console.harness import signed_in
from tests.organization.harness import Org

SUPERSCRIPT_TWO, CIRCLED_ONE, ARABIC_THREE = "\u00b2", "\u2460", "\u0663"


async def test_the_api_refuses_digits_that_are_not_ascii_and_days_past_the_calendar(org: Org):
    as_key = {"authorization": f"Bearer {org.api_key}"}
    for path in ("/v1/files", "/v1/batches"):
        for limit in (SUPERSCRIPT_TWO, "1" * 5000):
            reply = await org.http.get(path, params={"limit": limit}, headers=as_key)
            assert reply.status_code == 400, (path, reply.text)
            assert reply.json()["error"]["param"] == "limit"
    start = int(time.time()) - 86400
    for query, param in (
        ({"start_time": SUPERSCRIPT_TWO}, "start_time"),
        ({"start_time": start, "limit": CIRCLED_ONE}, "limit"),
        ({"start_time": start, "end_time": "\u00b9"}, "end_time"),
        ({"start_time": f"{ARABIC_THREE}00"}, "start_time"),
        ({"start_time": 1, "page": "9999-12-31"}, "page"),
    ):
        for path in ("/v1/organization/usage/completions", "/v1/organization/costs"):
            reply = await org.http.get(path, params=query, headers=org.headers("owner"))
            assert reply.status_code == 400, (path, query, reply.text)
            assert reply.json()["error"]["param"] == param
    chat = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}]}
    for n in (2**63, 6, 0):
        reply = await org.http.post("/v1/chat/completions", json={**chat, "n": n}, headers=as_key)
        assert reply.status_code == 400, (n, reply.text)
        assert reply.json()["error"]["param"] == "n"


async def test_the_console_refuses_them_too(org: Org):
    owner = await signed_in(org, "owner")
    for query in (
        f"days={SUPERSCRIPT_TWO}",
        "days=" + "1" * 5000,
    ):  # an unknown preset is the default range
        assert (await owner.get(f"/console/usage?{query}")).status_code == 200
    for query in ("from=9999-12-31&to=9999-12-31", "from=9999-12-30&to=9999-12-31"):
        for path in ("/console/usage", "/console/usage.csv"):
            reply = await owner.get(f"{path}?{query}")
            assert reply.status_code == 400, (path, query, reply.text)
    operator = await signed_in(org, "operator")
    path = f"/console/operator/organizations/{org.b}"
    for field, value in (("rpm", ARABIC_THREE), ("rpm", "1_000"), ("tier", "\uff13")):
        refused = await operator.post(f"{path}/limits", {field: value})
        assert refused.status_code == 400, (field, value, refused.text)
        assert "is not a whole number" in refused.text
    for amount in ("1_000", "\uff19", ARABIC_THREE, "NaN", "1e3"):
        refused = await operator.post(f"{path}/credit", {"kind": "topup", "amount": amount})
        assert refused.status_code == 400 and "is not an amount" in refused.text, amount
    page = await operator.get(path)  # nothing was set from them
    assert 'name="rpm" inputmode="numeric" value=""' in page.text
    assert "¥1,000.00" not in page.text and "¥9.00" not in page.text
    topped = await operator.post(f"{path}/credit", {"kind": "topup", "amount": "1,000.50"})
    assert topped.status_code == 303, topped.text
