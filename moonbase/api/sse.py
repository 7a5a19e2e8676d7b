"""Server-sent events: ``data: {json}`` per chunk, then ``data: [DONE]``.

Chunks that are ready together leave in one write: an upstream engine that
sends many chunks in one network read (a fast engine, or one catching up)
would otherwise cost a socket write and a pass through every middleware per
chunk, which capped a 200-chunk stream at a few dozen streams a second. The
chunk generator runs ahead in its own task, and each write takes everything
it has produced so far; nothing ever waits to fill a batch, so a slow stream
still goes out chunk by chunk as it is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from moonbase.api.error_handlers import sse_error_event
from moonbase.errors import MoonbaseError

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# Events produced but not yet written: a client that reads slowly holds the
# generator back here.
AHEAD = 256
_END = None


async def start_sse(chunks: AsyncGenerator[dict[str, Any], None]) -> StreamingResponse:
    """Take the first chunk before answering, so an early refusal is a plain HTTP error."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await chunks.aclose()
        raise
    return StreamingResponse(
        _encode(first, chunks), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _encode(
    first: dict[str, Any] | None, rest: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[bytes, None]:
    ready: asyncio.Queue[bytes | None] = asyncio.Queue(AHEAD)
    producer = asyncio.create_task(_produce(first, rest, ready))
    try:
        while True:
            event = await ready.get()
            batch = []
            while event is not _END:
                batch.append(event)
                if ready.empty():
                    break
                event = ready.get_nowait()
            if batch:
                yield b"".join(batch)
            if event is _END:
                break
    finally:  # the client left, or all was sent: the generator ends either way
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    yield b"data: [DONE]\n\n"


async def _produce(
    first: dict[str, Any] | None,
    rest: AsyncGenerator[dict[str, Any], None],
    ready: asyncio.Queue[bytes | None],
) -> None:
    async with aclosing(rest):
        try:
            if first is not None:
                await ready.put(_event(first))
            async for chunk in rest:
                await ready.put(_event(chunk))
        except MoonbaseError as exc:
            await ready.put(sse_error_event(exc).encode())
        except Exception as exc:
            log.exception("stream failed", exc_info=exc)
            await ready.put(sse_error_event(exc).encode())
    await ready.put(_END)


def _event(chunk: dict[str, Any]) -> bytes:
    # orjson: compact UTF-8, several times faster than json per chunk.
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
