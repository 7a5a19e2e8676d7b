"""A scripted OpenAI-compatible server on loopback, for upstream-engine tests.

It answers /v1/chat/completions (streamed or not) from a script: text,
reasoning, tool calls, usage, an error status, a delay before answering, or a
connection dropped mid-stream. It records every request body, so tests can
check what moonbase sent. It runs in the test's event loop under a real
uvicorn, so moonbase talks to it over real TCP.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Script:
    content: str = "Hello from upstream."
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # name, arguments
    usage: dict[str, Any] = field(
        default_factory=lambda: {
            "prompt_tokens": 21,
            "completion_tokens": 7,
            "total_tokens": 28,
            "prompt_tokens_details": {"cached_tokens": 16},
        }
    )
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0  # before the response starts
    chunk_delay_s: float = 0.0
    drop_after_chunks: int | None = None  # close the connection mid-stream


class DropConnection(Exception):
    """Raised inside the app mid-response: uvicorn then drops the connection."""


class FakeUpstream:
    def __init__(self, name: str = "upstream") -> None:
        self.name = name
        self.script = Script()
        # A script per request, where the answer depends on what was asked.
        self.script_for: Callable[[dict[str, Any]], Script] | None = None
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        self.paths.append(path)
        if scope["method"] == "GET" and path.endswith("/models"):
            await _json(send, 200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
            return
        payload = json.loads(body or b"{}")
        self.requests.append(payload)
        script = self.script_for(payload) if self.script_for is not None else self.script
        if path.endswith("/tokenize"):
            await _json(send, 200, {"count": 42, "tokens": list(range(42))})
            return
        if not path.endswith("/chat/completions"):
            await _json(send, 404, {"error": {"message": f"no {path}", "type": "not_found"}})
            return
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        if script.status != 200:
            headers = [(b"retry-after", script.retry_after.encode())] if script.retry_after else []
            error = {"error": {"message": f"{self.name} says no", "type": "x"}}
            await _json(send, script.status, error, headers)
            return
        if payload.get("stream"):
            await self._stream(send, payload, script)
        else:
            await _json(send, 200, self._completion(payload, script))

    def _completion(self, payload: dict[str, Any], script: Script) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": script.content}
        if script.reasoning is not None:
            message[script.reasoning_field] = script.reasoning
        if script.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": call}
                for i, call in enumerate(script.tool_calls)
            ]
        finish = "tool_calls" if script.tool_calls else "stop"
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": payload.get("model"),
            "choices": [
                {"index": i, "message": message, "finish_reason": finish}
                for i in range(payload.get("n") or 1)
            ],
            "usage": script.usage,
        }

    async def _stream(self, send: Any, payload: dict[str, Any], script: Script) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        sent = 0
        for chunk in self._chunks(payload, script):
            if script.drop_after_chunks is not None and sent >= script.drop_after_chunks:
                raise DropConnection(self.name)
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            sent += 1
            if script.chunk_delay_s:
                await asyncio.sleep(script.chunk_delay_s)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    def _chunks(self, payload: dict[str, Any], script: Script) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict:
            choice = {"index": index, "delta": delta, "finish_reason": finish}
            return {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}

        chunks = []
        for index in range(payload.get("n") or 1):
            chunks.append(chunk({"role": "assistant"}, index=index))
            if script.reasoning:
                for word in script.reasoning.split(" "):
                    chunks.append(chunk({script.reasoning_field: word + " "}, index=index))
            for word in _pieces(script.content):
                chunks.append(chunk({"content": word}, index=index))
            for position, call in enumerate(script.tool_calls):
                name = {"index": position, "id": f"call_{position}", "type": "function"}
                chunks.append(chunk({"tool_calls": [{**name, "function": {"name": call["name"]}}]}))
                half = len(call["arguments"]) // 2
                for part in (call["arguments"][:half], call["arguments"][half:]):
                    delta = {"index": position, "function": {"arguments": part}}
                    chunks.append(chunk({"tool_calls": [delta]}, index=index))
            finish = "tool_calls" if script.tool_calls else "stop"
            chunks.append(chunk({}, finish, index))
        if (payload.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": script.usage}
            )
        return chunks


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


async def _json(
    send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": data})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: FakeUpstream) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL (with /v1)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task
