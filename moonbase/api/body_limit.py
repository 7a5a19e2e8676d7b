"""A cap on JSON request bodies, enforced before anything is parsed.

A chat request carrying a huge data URL would otherwise be read, joined and
parsed (several copies of it in memory) only to be refused. Uploads are
exempt: ``/v1/files`` (and the console's upload) streams to disk under its own per-file limit. An
over-large body is still read to its end -- and dropped -- so that the
client, still sending, gets the 413 rather than a broken pipe.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.api.error_handlers import error_parts
from moonbase.bounds import whole_number
from moonbase.errors import MoonbaseError

EXEMPT_PATHS = frozenset({"/v1/files", "/console/files/upload"})
# Past this much more, an over-large body is not drained but the connection dropped.
DRAIN_LIMIT = 256 * 1024 * 1024


class RequestTooLargeError(MoonbaseError):
    status_code = 413
    error_type = "invalid_request_error"


def too_large(size: int, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is {size / 2**20:.1f} MB; requests may be at most "
        f"{limit / 2**20:.0f} MB. Upload large images and videos as files (purpose image "
        "or video) and send them as ms://<file_id>",
        code="request_too_large",
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        size = whole_number(declared.decode("latin-1"), 30) if declared is not None else None
        if size is not None and size > self.max_bytes:
            await _drain(receive)
            await refuse(scope, send, too_large(size, self.max_bytes))
            return
        # A body without a length (chunked) is counted as it is read. Past the
        # cap the app is told the client left, whatever it answers is dropped,
        # and the 413 is sent instead (FastAPI would turn an exception raised
        # while it reads the body into a generic 400).
        received = 0
        overflow = False

        async def counting_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    overflow = True
                    if message.get("more_body", False):
                        await _drain(receive)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not overflow:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if overflow:
            await refuse(scope, send, too_large(received, self.max_bytes))


async def _drain(receive: Receive) -> None:
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def refuse(scope: Scope, send: Send, error: MoonbaseError) -> None:
    status, shaped = error_parts(error, scope.get("path", ""))
    body = json.dumps(shaped).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
