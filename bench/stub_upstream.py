"""A minimal OpenAI-compatible upstream that answers at once.

``POST /v1/chat/completions`` returns a fixed small reply, or with
``"stream": true`` 200 chunks of one word each and a usage chunk. What a
gateway adds on top of this is its own overhead. Run it with one uvicorn
worker: ``python bench/stub_upstream.py --port 9000``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

STREAM_CHUNKS = 200
USAGE = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
REPLY = json.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is the capital of France."},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = b"".join(
    [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": f"w{i} "}) for i in range(STREAM_CHUNKS - 2)),
        _chunk({}, "stop"),
        b"data: "
        + json.dumps(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": USAGE,
            }
        ).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
)
# Sent as separate writes, as an engine emits them.
STREAM_PARTS = [part + b"\n\n" for part in STREAM.split(b"\n\n") if part]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        await _send(send, MODELS, b"application/json")
        return
    if b'"stream":true' in body.replace(b" ", b""):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for part in STREAM_PARTS:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await _send(send, REPLY, b"application/json")


async def _send(send: Any, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
