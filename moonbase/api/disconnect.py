"""Stop work for a client that has gone away (non-streaming requests).

Streaming responses are cancelled by Starlette when the client disconnects;
a plain request only learns of it by listening to ``receive`` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Await ``work``; if the client disconnects first, cancel it and return None.

    An error raised by ``work`` propagates as itself. Two plain asyncio tasks
    (the work, a watcher) rather than a task group: this wraps every plain
    chat request, and anyio's group and cancel scopes cost more than the rest
    of the gateway's bookkeeping for it.
    """

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this request itself is cancelled (server shutdown)
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None
    return task.result()
