"""Images and videos against the real embedded model (which reads neither)."""

from __future__ import annotations

import base64

import openai
import pytest

from tests.e2e.server import RunningServer
from tests.e2e.test_files_e2e import new_client, peak_rss_kb
from tests.files import documents

MODEL = "moonshot-v1-8k"


def ask_about(url: str, kind: str = "image") -> list[dict[str, object]]:
    part = {"type": f"{kind}_url", f"{kind}_url": {"url": url}}
    return [{"role": "user", "content": [part, {"type": "text", "text": "Describe it."}]}]


def test_image_to_a_text_only_model_is_a_400(client: openai.OpenAI) -> None:
    url = "data:image/png;base64," + base64.b64encode(documents.png()).decode()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=ask_about(url))  # type: ignore[arg-type]
    message = refused.value.body["message"]  # type: ignore[index]
    assert f"model {MODEL} cannot read image input" in message
    assert "no model on this deployment reads images" in message


def test_ms_reference_to_another_accounts_file_is_a_404(
    client: openai.OpenAI, server: RunningServer
) -> None:
    other = new_client(server, "e2e-media-bob")
    theirs = other.files.create(file=("bob.png", documents.png()), purpose="image")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=MODEL, messages=ask_about(f"ms://{theirs.id}"))  # type: ignore[arg-type]
    mine = client.files.create(file=("me.png", documents.png()), purpose="image")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=ask_about(f"ms://{mine.id}"))  # type: ignore[arg-type]
    assert "cannot read image input" in refused.value.body["message"]  # type: ignore[index]
    client.files.delete(mine.id)


def test_20mb_data_url_is_refused_without_exhausting_memory(
    client: openai.OpenAI, server: RunningServer
) -> None:
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * (20 * 2**20)).decode()
    before = peak_rss_kb(server.process.pid)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=MODEL, messages=ask_about(url))  # type: ignore[arg-type]
    growth_mb = (peak_rss_kb(server.process.pid) - before) / 1024
    print(f"20 MB data URL: server peak RSS grew by {growth_mb:.1f} MB")
    assert refused.value.status_code == 413
    assert "requests may be at most 16 MB" in refused.value.body["message"]  # type: ignore[index]
    # The 27 MB body is read and dropped chunk by chunk, never parsed.
    assert growth_mb < 20
