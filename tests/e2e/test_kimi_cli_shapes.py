"""Replays of the requests kimi-cli sends, against the real embedded model.

kimi-cli always streams with include_usage, sends ``thinking`` (disabled by
default, ``keep: "all"`` when asked) and a ``prompt_cache_key``, offers about
fifteen tools with no ``tool_choice``, writes assistant tool-call turns
without ``content``, and uploads videos (purpose "video") to send as ms://.
"""

from __future__ import annotations

import openai
import pytest

from tests.files import documents

TOOL_NAMES = [
    "Shell", "ReadFile", "WriteFile", "StrReplaceFile", "Glob", "Grep", "SearchWeb",
    "FetchURL", "Task", "SetTodoList", "Think", "ReadMediaFile", "SendDMail",
    "CreateSubagent", "AskUser",
]  # fmt: skip


def kimi_cli_tools() -> list[dict[str, object]]:
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"The {name} tool of the agent.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "A path or a query"},
                        "limit": {"type": "integer", "description": "At most this many"},
                    },
                    "required": ["path"],
                },
            },
        }
        for name in TOOL_NAMES
    ]


def stream_like_kimi_cli(
    client: openai.OpenAI, model: str, messages: list[dict[str, object]], thinking: dict
) -> tuple[str, str, list[object], openai.types.CompletionUsage | None]:
    stream = client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        tools=kimi_cli_tools(),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=48,
        extra_body={"thinking": thinking, "prompt_cache_key": "session-3f2a"},
    )
    content, reasoning, calls, usage = "", "", [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            calls.extend(choice.delta.tool_calls or [])
    return content, reasoning, calls, usage


def test_first_turn_with_fifteen_tools_and_thinking_disabled(client: openai.OpenAI) -> None:
    # thinking is sent to every model; kimi-k2-turbo-preview has no such
    # parameter and must accept and ignore it.
    content, reasoning, calls, usage = stream_like_kimi_cli(
        client,
        "kimi-k2-turbo-preview",
        [
            {"role": "system", "content": "You are Kimi CLI, a coding agent."},
            {"role": "user", "content": "List the files in the current folder."},
        ],
        {"type": "disabled"},
    )
    assert content or calls
    assert reasoning == ""
    assert usage is not None and usage.prompt_tokens > 15 * 20  # the tools are in the prompt


def test_tool_result_turn_without_content_and_with_reasoning(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are Kimi CLI, a coding agent."},
        {"role": "user", "content": "What is in README.md?"},
        {
            "role": "assistant",
            "reasoning_content": "I should read the file.",
            "tool_calls": [
                {
                    "id": "functions.ReadFile:0",
                    "type": "function",
                    "function": {"name": "ReadFile", "arguments": '{"path": "README.md"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "functions.ReadFile:0",
            "content": [{"type": "text", "text": "# moonbase\nA self-hosted Kimi platform."}],
        },
    ]
    content, reasoning, calls, usage = stream_like_kimi_cli(
        client, "kimi-k2.6", messages, {"type": "enabled", "keep": "all"}
    )
    assert reasoning.strip(), "kimi-k2.6 thinks unless told not to"
    assert content or calls
    assert usage is not None and usage.completion_tokens > 0


def test_video_uploaded_then_sent_as_ms_reference(client: openai.OpenAI, tmp_path) -> None:
    clip = documents.mp4(tmp_path / "screen.mp4")
    with clip.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="video")  # type: ignore[arg-type]
    assert uploaded.status == "ready"
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": f"ms://{uploaded.id}", "id": None}},
                {"type": "text", "text": "What happens in this recording?"},
            ],
        }
    ]
    # The embedded model reads no video: the request parses, the file is
    # found, and the answer is the 400 that says so (a vision engine takes it:
    # tests/platform/test_chat_media.py).
    with pytest.raises(openai.BadRequestError) as refused:
        stream_like_kimi_cli(client, "kimi-k2.6", messages, {"type": "disabled"})
    assert "cannot read video input" in refused.value.body["message"]  # type: ignore[index]
    client.files.delete(uploaded.id)
