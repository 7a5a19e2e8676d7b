"""Requests cut off by shutdown answer a Moonshot-shaped 503 with ``retry-after``.

On SIGTERM uvicorn stops accepting, waits ``timeout_graceful_shutdown`` for
running requests, then cancels them, and answers a cancelled request that had
not started its response with a bare ``text/plain`` 500, which clients read
as a server fault. Cancellation reaches this outermost middleware only then
(a client that leaves does not cancel the request's task), so here it becomes
a 503 the clients' retry logic understands.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.api.error_handlers import error_response
from moonbase.errors import ShuttingDownError


class ShutdownMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if not started:
                refusal = ShuttingDownError(
                    "The server is shutting down, please retry the request",
                    retry_after=1,
                )
                with contextlib.suppress(Exception):
                    await error_response(refusal, scope.get("path", ""))(scope, receive, send)
            raise
