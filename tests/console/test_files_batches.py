"""The files and batches pages at the HTTP level: a project's files and
batches as a key of that project would see them (another project's are
invisible), uploads streamed with the CSRF token as a header, clear errors
for bad uploads (never a 500), extracted text escaped, and each action as
each role."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from html import unescape
from pathlib import Path

import httpx

from moonbase.store.tables import Batch
from tests.console.harness import Visitor, signed_in
from tests.files.documents import ENGLISH, pdf
from tests.organization.harness import Org

LINE = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "moonshot-v1-8k", "max_tokens": 4,
                 "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip


async def upload(
    v: Visitor, project: str, name: str, data: bytes, purpose: str = "file-extract",
    csrf: str | None = None,
) -> httpx.Response:  # fmt: skip
    """As static/files.js sends it: multipart, the token in the header, HX-Request."""
    return await v.http.post(
        f"/console/files/upload?project={project}",
        files={"file": (name, data)},
        data={"purpose": purpose},
        headers={"x-csrf-token": v.csrf if csrf is None else csrf, "hx-request": "true"},
    )


def file_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="file-([^"]+)"', html)


async def test_upload_a_pdf_read_its_text_and_delete_it(org: Org, tmp_path: Path):
    member = await signed_in(org, "member")
    page = await member.get(f"/console/files?project={org.p1}")
    assert page.status_code == 200 and "No files in this project yet." in page.text
    assert "files.js" in page.text and 'enctype="multipart/form-data"' in page.text
    document = pdf(tmp_path / "report.pdf", [ENGLISH, "<script>alert(1)</script> & more"])
    done = await upload(member, org.p1, "report.pdf", document.read_bytes())
    assert done.status_code == 204, done.text
    assert done.headers["hx-redirect"] == f"/console/files?project={org.p1}&done=uploaded"
    listing = await member.get(done.headers["hx-redirect"])
    assert "File uploaded." in listing.text and "report.pdf" in listing.text
    assert "file-extract" in listing.text and "ready" in listing.text
    assert re.search(r'class="num">\d+\.\d KB<', listing.text)  # its size, in KB
    [file_id] = file_ids(listing.text)
    shown = await member.get(f"/console/files/{file_id}?project={org.p1}")
    assert shown.status_code == 200
    assert ENGLISH in shown.text
    assert "<script>alert(1)</script>" not in shown.text  # text, never HTML
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in shown.text
    # The same file through the API (a key of P1 sees it: same scoping).
    got = await member.get(f"/console/files/{file_id}/download?project={org.p1}")
    assert got.status_code == 200 and got.content == document.read_bytes()
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''report.pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    gone = await member.post(f"/console/files/{file_id}/delete", {"project": org.p1})
    assert gone.status_code == 303
    after = await member.get(gone.headers["location"])
    assert "File deleted." in after.text and not file_ids(after.text)
    zh = await member.get(f"/console/files?project={org.p1}", headers={"accept-language": "zh"})
    assert "本项目还没有文件。" in zh.text


async def test_other_projects_files_are_invisible(org: Org):
    owner = await signed_in(org, "owner")
    secret = await upload(owner, org.p2, "p2.txt", b"only for P2", "batch")
    assert secret.status_code == 204, secret.text
    in_p2 = file_ids((await owner.get(f"/console/files?project={org.p2}")).text)
    assert len(in_p2) == 1
    assert not file_ids((await owner.get(f"/console/files?project={org.p1}")).text)
    # Under P1, P2's file does not exist (the API's 404), for the owner too.
    wrong = await owner.get(f"/console/files/{in_p2[0]}?project={org.p1}")
    assert wrong.status_code == 404
    member = await signed_in(org, "member")  # in P1 only
    for path in (f"/console/files/{in_p2[0]}?project={org.p2}",
                 f"/console/files/{in_p2[0]}/download?project={org.p2}",
                 f"/console/files?project={org.p2}"):  # fmt: skip
        reply = await member.get(path)
        assert reply.status_code == 404, path
        assert "only for P2" not in reply.text and "p2.txt" not in reply.text
    # The picker offers the member their own project, never P2.
    picker = await member.get("/console/files")
    assert org.p1 in picker.text and org.p2 not in picker.text
    assert (await member.post(f"/console/files/{in_p2[0]}/delete", {"project": org.p2})
            ).status_code == 404  # fmt: skip
    outsider = await signed_in(org, "outsider")
    assert (await outsider.get(f"/console/files?project={org.p1}")).status_code == 404
    assert (await upload(outsider, org.p1, "x.txt", b"x", "batch")).status_code == 404


async def test_bad_uploads_say_what_to_fix(org: Org):
    owner = await signed_in(org, "owner")
    empty = await upload(owner, org.p1, "empty.pdf", b"")
    assert empty.status_code == 400 and "File size is zero" in empty.text
    bogus = await upload(owner, org.p1, "x.txt", b"hello", purpose="assistants")
    assert bogus.status_code == 400
    assert "purpose must be one of file-extract, image, video, batch" in unescape(bogus.text)
    image = await upload(owner, org.p1, "cat.png", b"not a png", purpose="image")
    assert image.status_code == 400 and "The file is not a valid image" in image.text
    not_multipart = await owner.http.post(
        f"/console/files/upload?project={org.p1}", content=b"{}",
        headers={"x-csrf-token": owner.csrf, "content-type": "application/json"},
    )  # fmt: skip
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.text
    broken = await upload(owner, org.p1, "broken.pdf", b"%PDF-1.4 not really")
    assert broken.status_code == 204  # kept, as the API does, with what went wrong
    listing = await owner.get(f"/console/files?project={org.p1}")
    [file_id] = file_ids(listing.text)
    shown = await owner.get(f"/console/files/{file_id}?project={org.p1}")
    assert shown.status_code == 200 and "could not be read" in shown.text
    assert "The text of this file could not be extracted." in shown.text
    missing = await owner.get(f"/console/files/file-nope?project={org.p1}")
    assert missing.status_code == 404


async def test_uploads_and_deletes_need_the_token_in_the_header(org: Org):
    owner = await signed_in(org, "owner")
    for token in ("", "forged"):
        assert (await upload(owner, org.p1, "a.txt", b"a", "batch", csrf=token)).status_code == 403
    # A multipart body's csrf_token field is not looked for (the body is a stream).
    as_field = await owner.http.post(
        f"/console/files/upload?project={org.p1}",
        files={"file": ("a.txt", b"a")},
        data={"purpose": "batch", "csrf_token": owner.csrf},
    )
    assert as_field.status_code == 403 and "This form has expired" in as_field.text
    assert not file_ids((await owner.get(f"/console/files?project={org.p1}")).text)
    assert (await upload(owner, org.p1, "a.txt", b"a", "batch")).status_code == 204
    [file_id] = file_ids((await owner.get(f"/console/files?project={org.p1}")).text)
    refused = await owner.post(f"/console/files/{file_id}/delete", {"project": org.p1}, csrf=False)
    assert refused.status_code == 403
    assert file_ids((await owner.get(f"/console/files?project={org.p1}")).text) == [file_id]


async def test_files_by_role(org: Org):
    """Reading: whoever sees the project; uploading and deleting: its users
    (owner, admin, operator; a member or project owner of P1), never a viewer."""
    expected = {"owner": 204, "admin": 204, "member": 204, "project_owner": 204,
                "operator": 204, "viewer": 403, "viewer_in_p1": 403, "outsider": 404}  # fmt: skip
    owner = await signed_in(org, "owner")
    for who, status in expected.items():
        v = await signed_in(org, who)
        assert (await upload(v, org.p1, f"{who}.jsonl", b"{}", "batch")).status_code == status, who
        listing = await v.get(f"/console/files?project={org.p1}")
        assert listing.status_code == (404 if who == "outsider" else 200), who
        if status == 403:
            assert "does not allow this" in (await upload(v, org.p1, "x", b"x", "batch")).text
            assert "data-upload" not in listing.text  # no form they cannot use
        await upload(owner, org.p1, "victim.jsonl", b"{}", "batch")
        victim = file_ids((await owner.get(f"/console/files?project={org.p1}")).text)[0]
        deleted = await v.post(f"/console/files/{victim}/delete", {"project": org.p1})
        assert deleted.status_code == (303 if status == 204 else status), who


async def test_chinese_sizes_dates_and_statuses(org: Org):
    owner = await signed_in(org, "owner", **{"accept-language": "zh-CN"})
    await upload(owner, org.p1, "big.jsonl", json.dumps(LINE).encode() * 40, "batch")
    listing = await owner.get(f"/console/files?project={org.p1}")
    assert "文件已上传" not in listing.text  # no done= here
    assert re.search(r'class="num">\d+\.\d KB<', listing.text)
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d UTC", listing.text)
    assert "就绪" in listing.text and "本项目的文件" in listing.text


async def _batch_file(v: Visitor, project: str, lines: int = 2) -> str:
    body = "\n".join(json.dumps({**LINE, "custom_id": f"line-{n}"}) for n in range(lines))
    assert (await upload(v, project, "requests.jsonl", body.encode(), "batch")).status_code == 204
    listing = await v.get(f"/console/batches?project={project}")
    found = re.search(r'<option value="(file-[^"]+)"', listing.text)
    assert found is not None, listing.text
    return found.group(1)


def create_form(project: str, file_id: str) -> dict[str, object]:
    return {"project": project, "input_file_id": file_id,
            "endpoint": "/v1/chat/completions", "completion_window": "24h"}  # fmt: skip


async def held_batch(org: Org, project: str, file_id: str) -> str:
    """A validating batch another worker holds: it stays cancellable."""
    now = int(time.time())
    batch = Batch(id=f"batch_{secrets.token_hex(8)}", account_id=org.a, project_id=project,
                  endpoint="/v1/chat/completions", input_file_id=file_id, completion_window="24h",
                  status="validating", metadata_json="{}", total=0, completed=0, failed=0,
                  created_at=now, expires_at=now + 86400, claimed_by="elsewhere",
                  claim_until=now + 3600.0)  # fmt: skip
    async with org.db.transaction() as session:
        session.add(batch)
    return batch.id


async def test_run_a_batch_to_completion_and_download_its_output(org: Org):
    member = await signed_in(org, "member")
    empty = await member.get(f"/console/batches?project={org.p1}")
    assert "No batch file in this project yet." in empty.text
    assert "No batches in this project yet." in empty.text
    file_id = await _batch_file(member, org.p1)
    made = await member.post("/console/batches", create_form(org.p1, file_id))
    assert made.status_code == 303, made.text
    path = made.headers["location"]
    batch_id = re.search(r"/console/batches/([^?]+)\?", path).group(1)  # type: ignore[union-attr]
    page = await member.get(path)
    assert page.status_code == 200 and batch_id in page.text
    progress = f"/console/batches/{batch_id}/progress?project={org.p1}"
    fragment = page.text
    for _ in range(600):  # the in-process worker runs it on the scripted engine
        status = re.search(r'data-status="([a-z_]+)"', fragment).group(1)  # type: ignore[union-attr]
        if status in ("completed", "failed", "expired", "cancelled"):
            break
        assert f'hx-get="{progress}" hx-trigger="every 2s"' in fragment  # still polling
        await asyncio.sleep(0.2)
        fragment = (await member.get(progress, headers={"hx-request": "true"})).text
    assert status == "completed", fragment
    assert "hx-trigger" not in fragment  # polling stops once it ended
    assert not fragment.startswith("<!doctype")  # a fragment, not a page
    assert "2 of 2 requests done: 2 answered, 0 failed." in fragment
    output = re.search(r'data-testid="output" href="([^"]+)"', fragment).group(1)  # type: ignore[union-attr]
    got = await member.get(unescape(output))
    assert got.status_code == 200
    results = [json.loads(line) for line in got.text.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ["line-0", "line-1"]
    assert all(r["response"]["status_code"] == 200 for r in results)
    listing = await member.get(f"/console/batches?project={org.p1}")
    assert f'<tr id="batch-{batch_id}">' in listing.text and "completed" in listing.text
    owner = await signed_in(org, "owner")  # another project's batch does not exist here
    assert (await owner.get(f"/console/batches/{batch_id}?project={org.p2}")).status_code == 404
    assert batch_id not in (await owner.get(f"/console/batches?project={org.p2}")).text
    outsider = await signed_in(org, "outsider")
    assert (await outsider.get(path)).status_code == 404


async def test_batch_errors_say_what_to_fix(org: Org):
    owner = await signed_in(org, "owner")
    file_id = await _batch_file(owner, org.p1)
    base = {"project": org.p1, "input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    window = await owner.post("/console/batches", {**base, "completion_window": "1h"})
    assert window.status_code == 400
    assert "Completion window: completion_window must be between 12h and 7d" in unescape(
        window.text
    )
    await upload(owner, org.p1, "doc.txt", b"plain", "file-extract")
    listing = await owner.get(f"/console/files?project={org.p1}")
    extract_id = file_ids(listing.text)[0]
    wrong = await owner.post("/console/batches", {**base, "input_file_id": extract_id,
                                                  "completion_window": "24h"})  # fmt: skip
    assert wrong.status_code == 400 and "upload the .jsonl file with purpose" in unescape(
        wrong.text
    )
    endpoint = await owner.post("/console/batches", {**base, "endpoint": "/v1/embeddings",
                                                     "completion_window": "24h"})  # fmt: skip
    assert endpoint.status_code == 400 and "Endpoint: endpoint must be" in unescape(endpoint.text)


async def test_batches_by_role_and_cancel(org: Org):
    """Creating and cancelling: the project's users; a viewer reads only."""
    expected = {"owner": 303, "admin": 303, "member": 303, "project_owner": 303,
                "operator": 303, "viewer": 403, "viewer_in_p1": 403, "outsider": 404}  # fmt: skip
    owner = await signed_in(org, "owner")
    file_id = await _batch_file(owner, org.p1)
    for who, status in expected.items():
        v = await signed_in(org, who)
        made = await v.post("/console/batches", create_form(org.p1, file_id))
        assert made.status_code == status, (who, made.status_code)
        held = await held_batch(org, org.p1, file_id)
        page = await v.get(f"/console/batches/{held}?project={org.p1}")
        assert page.status_code == (404 if who == "outsider" else 200), who
        if status == 303:
            assert 'data-status="validating"' in page.text and "hx-trigger" in page.text
            assert "Cancel batch" in page.text
        elif status == 403:
            assert "Cancel batch" not in page.text
        cancelled = await v.post(f"/console/batches/{held}/cancel", {"project": org.p1})
        assert cancelled.status_code == status, (who, cancelled.status_code)
        if status == 303:
            after = await v.get(cancelled.headers["location"])
            assert 'data-status="cancelling"' in after.text
            again = await v.post(f"/console/batches/{held}/cancel", {"project": org.p1})
            assert again.status_code == 400 and "only a validating" in again.text
    for token in ("", "forged"):
        refused = await owner.post(f"/console/batches/{held}/cancel",
                                   {"project": org.p1, "csrf_token": token})  # fmt: skip
        assert refused.status_code == 403
        refused = await owner.post("/console/batches", {"project": org.p1, "csrf_token": token})
        assert refused.status_code == 403
