"""Stop work for a client that has gone away (non-streaming requests).

Streaming responses are cancelled by Starlette when the client disconnects;
a plain request only learns of it by listening to ``receive`` meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio
from fastapi import Request

T = TypeVar("T")


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """Await ``work``; if the client disconnects first, cancel it and return None.

    An error raised by ``work`` propagates as itself (not wrapped in the task
    group's ExceptionGroup), so the error handlers still see a MoonbaseError.
    """
    result: list[T] = []
    failure: list[Exception] = []

    async with anyio.create_task_group() as group:

        async def run() -> None:
            try:
                result.append(await work)
            except Exception as exc:
                failure.append(exc)
            finally:
                group.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    if failure:
        raise failure[0]
    return result[0] if result else None
