"""/v1/files against a real moonbase, through the openai SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.e2e.server import RunningServer, openai_client
from tests.files import documents
from tests.files.documents import CHINESE, ENGLISH

MB = 1024 * 1024


def new_client(server: RunningServer, account: str) -> openai.OpenAI:
    """A client for a fresh account of the running server (keys made by the CLI)."""
    made = subprocess.run(
        [sys.executable, "-m", "moonbase", "keys", "create", "--account", account,
         "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return openai_client(f"{server.base_url}/v1", made.stdout.strip())


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _text(name: str, body: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(body.encode(encoding))
        return path

    return write


def _scan(folder: Path) -> Path:
    path = folder / "scan.jpg"
    path.write_bytes(documents.scanned_image(image_format="JPEG"))
    return path


FORMATS: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "pdf": (lambda d: documents.pdf(d / "r.pdf", [f"{ENGLISH}\n{CHINESE}"]), [ENGLISH, CHINESE]),
    "docx": (lambda d: documents.docx(d / "r.docx"), [ENGLISH, CHINESE, "华东"]),
    "xlsx": (lambda d: documents.xlsx(d / "r.xlsx"), ["北京\t42"]),
    "pptx": (lambda d: documents.pptx(d / "r.pptx"), ["Roadmap", CHINESE]),
    "epub": (lambda d: documents.epub(d / "r.epub"), [CHINESE, ENGLISH]),
    "txt-gbk": (_text("gbk.txt", f"{CHINESE}，你好", "gbk"), [f"{CHINESE}，你好"]),
    "md": (_text("r.md", f"# {CHINESE}\n"), [f"# {CHINESE}"]),
    "csv": (_text("r.csv", "name,score\n张三,90\n"), ["张三,90"]),
    "json": (_text("r.json", '{"k": "值"}'), ['{"k": "值"}']),
    "html": (_text("r.html", f"<html><body><p>{CHINESE}</p></body></html>"), [CHINESE]),
    "code": (_text("main.go", "package main\nfunc main() {}\n"), ["func main() {}"]),
    "log": (_text("app.log", "12:00 ERROR disk full\n"), ["ERROR disk full"]),
    "ocr": (_scan, ["quarterly revenue"]),
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_extraction_of_each_format(client: openai.OpenAI, tmp_path: Path, kind: str) -> None:
    make, expected = FORMATS[kind]
    path = make(tmp_path)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="file-extract")  # type: ignore[arg-type]
    assert uploaded.status == "ready", uploaded.status_details
    document = json.loads(client.files.content(uploaded.id).text)
    assert document["type"] == "file" and document["filename"] == path.name
    for text in expected:
        assert text.lower() in document["content"].lower(), (kind, document["content"][:500])
    client.files.delete(uploaded.id)


@pytest.mark.parametrize("purpose", ["file-extract", "image", "video", "batch"])
def test_lifecycle_of_each_purpose(client: openai.OpenAI, tmp_path: Path, purpose: str) -> None:
    payloads = {
        "file-extract": ("notes.txt", f"{CHINESE}\n".encode()),
        "image": ("dot.png", documents.png()),
        "video": ("clip.mp4", documents.mp4(tmp_path / "clip.mp4").read_bytes()),
        "batch": ("in.jsonl", b'{"custom_id": "1"}\n'),
    }
    name, data = payloads[purpose]
    uploaded = client.files.create(file=(name, data), purpose=purpose)  # type: ignore[arg-type]
    assert (uploaded.purpose, uploaded.status, uploaded.bytes) == (purpose, "ready", len(data))
    assert uploaded.filename == name
    assert uploaded.id in {f.id for f in client.files.list()}
    assert client.files.retrieve(uploaded.id) == uploaded
    content = client.files.content(uploaded.id).content
    if purpose == "file-extract":
        assert json.loads(content)["content"] == f"{CHINESE}\n"
    else:
        assert content == data
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_other_account_cannot_touch_files(client: openai.OpenAI, server: RunningServer) -> None:
    mine = client.files.create(file=("secret.txt", b"alice only"), purpose="file-extract")
    other = new_client(server, "e2e-files-bob")
    assert mine.id not in {f.id for f in other.files.list()}
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(mine.id)
    assert client.files.retrieve(mine.id).status == "ready"
    client.files.delete(mine.id)


def test_100mb_upload_streams_and_101mb_is_refused(
    client: openai.OpenAI, server: RunningServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.jsonl"
    line = b'{"custom_id": "x", "body": "' + b"a" * 1000 + b'"}\n'
    with big.open("wb") as handle:
        handle.write(line * (100 * MB // len(line)))
        handle.write(b"\n" * (100 * MB - handle.tell()))
    before = peak_rss_kb(server.process.pid)
    with big.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    growth_mb = (peak_rss_kb(server.process.pid) - before) / 1024
    assert uploaded.bytes == 100 * MB and uploaded.status == "ready"
    print(f"100 MB upload: server peak RSS grew by {growth_mb:.1f} MB")
    assert growth_mb < 50, f"server peak memory grew by {growth_mb:.1f} MB"
    client.files.delete(uploaded.id)

    with big.open("ab") as handle:
        handle.write(b"\n" * MB)
    with big.open("rb") as handle, pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=handle, purpose="batch")
    assert refused.value.body["message"] == (  # type: ignore[index]
        "File size is too large, max file size is 100MB, please confirm and re-upload the file"
    )


def test_the_1001st_file_is_refused(server: RunningServer) -> None:
    uploader = new_client(server, "e2e-files-many")
    for number in range(1000):
        uploader.files.create(file=(f"{number}.jsonl", b"{}\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        uploader.files.create(file=("1001.jsonl", b"{}\n"), purpose="batch")
    assert refused.value.body["message"] == (  # type: ignore[index]
        "The number of files you have uploaded exceeded the max file count 1000, "
        "please delete previous uploaded files"
    )
