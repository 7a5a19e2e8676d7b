"""A request body that stops arriving is given up on: 408, connection freed.

uvicorn times out idle keep-alive connections but not a body that stalls
half-way, so a client could hold a connection (and, for an upload, a spool
file) for as long as it liked by sending a few bytes and then nothing. Here
each wait for the next piece of a body that is not complete yet is bounded by
``body_read_timeout_s``; once the body is complete, waits are not bounded
(a streaming response waits on ``receive`` for the client to leave).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.api.body_limit import refuse
from moonbase.errors import MoonbaseError


class RequestTimeoutError(MoonbaseError):
    status_code = 408
    error_type = "invalid_request_error"


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        stalled = False

        async def timed_receive() -> Message:
            nonlocal complete, stalled
            if complete or stalled:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                stalled = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            if not stalled:
                await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not stalled:
                raise
            # The app saw the client leave (ClientDisconnect, say): the 408 is the answer.
        if stalled:
            await refuse(
                scope,
                send,
                RequestTimeoutError(
                    f"The request body stopped arriving for {self.timeout_s:g} s; "
                    "send the whole body without pausing",
                    code="request_timeout",
                ),
            )
