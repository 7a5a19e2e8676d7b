"""The playground: its page (models with their context and capabilities, the
projects the person may spend from), the streamed answer through the console
(CSRF-checked, the chosen project pays, the request in its usage as a call
with a key would be), the token count, and who may not spend."""

from __future__ import annotations

import json
import time

import httpx

from moonbase.console.security import CSRF_HEADER
from moonbase.store.repositories import usage as usage_repo
from tests.console.harness import Visitor, signed_in
from tests.organization.harness import Org

CHAT = "/console/playground/chat"
COUNT = "/console/playground/count"


def _request(text: str = "Say yes.") -> dict[str, object]:
    return {
        "model": "moonshot-v1-8k",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        "max_tokens": 16,
    }


async def _post(v: Visitor, path: str, body: object, csrf: str | None = None) -> httpx.Response:
    token = v.csrf if csrf is None else csrf
    return await v.http.post(
        path, content=json.dumps(body), headers={"content-type": "application/json",
                                                  CSRF_HEADER: token},
    )  # fmt: skip


def _events(text: str) -> list[dict[str, object]]:
    lines = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]", text[-200:]
    return [json.loads(line) for line in lines[:-1]]


async def test_the_page_lists_models_with_context_and_capabilities(org: Org):
    member = await signed_in(org, "member")
    page = await member.get("/console/playground")
    assert page.status_code == 200
    assert 'id="playground-data"' in page.text and "moonshot-v1-8k" in page.text
    data = json.loads(page.text.split('id="playground-data">')[1].split("</script>")[0])
    eight_k = next(m for m in data["models"] if m["id"] == "moonshot-v1-8k")
    assert eight_k["context"] == 4096  # the catalogue's 8K, narrowed to the engine's 4,096
    assert eight_k["thinking"] == "never" and eight_k["image"] is False
    # The member may spend from P1 only (P2 is not theirs to see).
    assert f'value="{org.p1}"' in page.text and f'value="{org.p2}"' not in page.text
    assert "sk-" not in page.text  # no key reaches the page
    chinese = await member.get("/console/playground", headers={"accept-language": "zh-CN"})
    assert "体验中心" in chinese.text and "付费项目" in chinese.text
    viewer = await signed_in(org, "viewer")
    empty = await viewer.get("/console/playground")
    assert empty.status_code == 200 and "cannot spend" in empty.text
    assert 'id="playground"' not in empty.text


async def test_a_streamed_answer_is_charged_to_the_chosen_project(org: Org):
    member = await signed_in(org, "member")
    await member.get("/console/playground")
    reply = await _post(member, CHAT, {"project": org.p1, "request": _request()})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    chunks = _events(reply.text)
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""  # type: ignore[index]
        for c in chunks
        if c.get("choices")
    )
    assert text  # the scripted engine's words
    usage = chunks[-1]["usage"]  # include_usage is the console's
    assert usage["total_tokens"] > 0  # type: ignore[index]

    # Charged to P1, as a request with one of P1's keys would be: in the usage
    # record (no key named) and in the organisation's usage by project.
    deadline = time.monotonic() + 60
    while True:
        async with org.db.read() as session:
            records = await usage_repo.for_account(session, org.a)
        if records or time.monotonic() > deadline:
            break
        await _sleep()
    assert [(r.project_id, r.api_key_id) for r in records] == [(org.p1, None)]
    assert records[0].cost_micro > 0
    start = int(time.time()) // 86400 * 86400
    seen = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&group_by[]=project_id",
        headers=org.headers("owner"),
    )
    results = [r for bucket in seen.json()["data"] for r in bucket["results"]]
    assert [(r["project_id"], r["num_model_requests"]) for r in results] == [(org.p1, 1)]


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


async def test_who_may_spend_from_which_project(org: Org):
    expected = {"owner": 200, "admin": 200, "member": 200, "project_owner": 200,
                "operator": 200, "viewer": 403, "viewer_in_p1": 403, "outsider": 404}  # fmt: skip
    for who, status in expected.items():
        visitor = await signed_in(org, who)
        reply = await _post(visitor, CHAT, {"project": org.p1, "request": _request()})
        assert reply.status_code == status, (who, reply.status_code, reply.text[:200])
        if status == 403:
            assert "does not allow this" in reply.json()["error"]["message"]
    member = await signed_in(org, "member")  # P2 is not theirs: it does not exist for them
    assert (
        await _post(member, CHAT, {"project": org.p2, "request": _request()})
    ).status_code == 404


async def test_every_playground_post_needs_the_token(org: Org):
    member = await signed_in(org, "member")
    other = await signed_in(org, "admin")
    for path in (CHAT, COUNT):
        for token in ("", "forged", other.csrf):
            reply = await _post(member, path, {"project": org.p1, "request": _request()}, token)
            assert reply.status_code == 403, (path, token)
    async with org.db.read() as session:
        assert await usage_repo.for_account(session, org.a) == []  # nothing ran


async def test_errors_say_what_to_fix(org: Org):
    member = await signed_in(org, "member")
    bad = await _post(member, CHAT, {"project": org.p1, "request": {"model": "moonshot-v1-8k"}})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    unknown = await _post(
        member, CHAT, {"project": org.p1, "request": {**_request(), "model": "gpt-4"}}
    )
    assert unknown.status_code == 404
    chinese = await _post(
        await signed_in(org, "viewer", **{"accept-language": "zh-CN"}),
        CHAT,
        {"project": org.p1, "request": _request()},
    )
    assert "只读成员" in chinese.json()["error"]["message"]
    not_json = await member.http.post(
        CHAT, content=b"{", headers={"content-type": "application/json", CSRF_HEADER: member.csrf}
    )
    assert not_json.status_code == 400


async def test_the_token_count_is_the_estimate_endpoints(org: Org):
    member = await signed_in(org, "member")
    body = _request("How many tokens is this?")
    counted = await _post(
        member, COUNT, {"project": org.p1, "model": body["model"], "messages": body["messages"]}
    )
    assert counted.status_code == 200, counted.text
    api = await org.http.post(
        "/v1/tokenizers/estimate-token-count",
        json={"model": body["model"], "messages": body["messages"]},
        headers={"authorization": f"Bearer {org.api_key}"},
    )
    assert counted.json()["total_tokens"] == api.json()["data"]["total_tokens"] > 0
    viewer = await signed_in(org, "viewer")
    refused = await _post(viewer, COUNT, {"project": org.p1, "model": body["model"],
                                          "messages": body["messages"]})  # fmt: skip
    assert refused.status_code == 403
