"""Server-sent events: ``data: {json}`` per chunk, then ``data: [DONE]``
(OpenAI's dialect; Anthropic's names each event and pings while idle).

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
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
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
# The first chunk: taken, none (the stream was empty), or still coming.
First = dict[str, Any] | None | asyncio.Future[dict[str, Any]]


def _data_event(chunk: dict[str, Any]) -> bytes:
    # orjson: compact UTF-8, several times faster than json per chunk.
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@dataclass(frozen=True)
class SseDialect:
    """How one API writes its events."""

    event: Callable[[dict[str, Any]], bytes]
    error: Callable[[BaseException], bytes]  # a mid-stream error, as one more event
    done: bytes  # after the last event
    keepalive: bytes | None = None  # sent whenever nothing else was for keepalive_s
    keepalive_s: float = 10.0


OPENAI_SSE = SseDialect(
    event=_data_event, error=lambda exc: sse_error_event(exc).encode(), done=b"data: [DONE]\n\n"
)


async def start_sse(
    chunks: AsyncGenerator[dict[str, Any], None], dialect: SseDialect = OPENAI_SSE
) -> StreamingResponse:
    """Take the first chunk before answering, so an early refusal is a plain HTTP error.

    A dialect with a keepalive waits for it only that long: a long prompt
    still being read gets its answer started and pings until its first chunk
    (a refusal after that is an error event)."""
    if dialect.keepalive is not None:
        return await _start_keeping_alive(chunks, dialect)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await chunks.aclose()
        raise
    return _response(first, chunks, dialect)


def _response(
    first: First, chunks: AsyncGenerator[dict[str, Any], None], dialect: SseDialect
) -> StreamingResponse:
    return StreamingResponse(
        _encode(first, chunks, dialect), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _start_keeping_alive(
    chunks: AsyncGenerator[dict[str, Any], None], dialect: SseDialect
) -> StreamingResponse:
    pending: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(anext(chunks))
    try:
        await asyncio.wait({pending}, timeout=dialect.keepalive_s)
    except BaseException:  # the request was cancelled: so is its generation
        pending.cancel()
        raise
    if not pending.done():
        return _response(pending, chunks, dialect)
    try:
        first = pending.result()
    except StopAsyncIteration:
        first = None
    except BaseException:
        await chunks.aclose()
        raise
    return _response(first, chunks, dialect)


class _Ready:
    """Events made and not yet written: a bounded hand-off from the producer
    task to the response's writer, which takes all there is at once.

    asyncio.Queue does the same with about a dozen Python calls of
    bookkeeping per item (its size checks, its waiter lists); per chunk of a
    stream that was a tenth of the gateway's calls. One producer and one
    consumer need only a list and a future each way."""

    def __init__(self, limit: int) -> None:
        self._items: list[bytes | None] = []
        self._limit = limit
        self._taker: asyncio.Future[None] | None = None  # the writer, waiting for events
        self._giver: asyncio.Future[None] | None = None  # the producer, waiting for room

    async def put(self, item: bytes | None) -> None:
        while len(self._items) >= self._limit:  # a slow reader holds the producer back
            self._giver = asyncio.get_running_loop().create_future()
            await self._giver
        self._items.append(item)
        if self._taker is not None:
            _wake(self._taker)
            self._taker = None

    async def take(self) -> list[bytes | None]:
        """Everything made so far, waiting for at least one event."""
        if not self._items:
            # Cancelled while waiting (a keepalive's timeout), the future is
            # left done and skipped; no event is lost, none was taken.
            self._taker = asyncio.get_running_loop().create_future()
            await self._taker
        items, self._items = self._items, []
        if self._giver is not None:
            _wake(self._giver)
            self._giver = None
        return items


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _encode(
    first: First, rest: AsyncGenerator[dict[str, Any], None], dialect: SseDialect
) -> AsyncGenerator[bytes, None]:
    ready = _Ready(AHEAD)
    producer = asyncio.create_task(_produce(first, rest, ready, dialect))
    try:
        while True:
            if dialect.keepalive is None:
                events = await ready.take()
            else:
                try:
                    events = await asyncio.wait_for(ready.take(), dialect.keepalive_s)
                except TimeoutError:  # a long prompt still being read: the client waits
                    yield dialect.keepalive
                    continue
            ended = events[-1] is _END  # nothing is made after the end
            if ended:
                events.pop()
            if events:
                yield b"".join(events)  # type: ignore[arg-type]  # no _END left in it
            if ended:
                break
    finally:  # the client left, or all was sent: the generator ends either way
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    if dialect.done:
        yield dialect.done


async def _produce(
    first: First,
    rest: AsyncGenerator[dict[str, Any], None],
    ready: _Ready,
    dialect: SseDialect,
) -> None:
    async with aclosing(rest):
        try:
            if isinstance(first, asyncio.Future):  # still coming: pings meanwhile
                try:
                    first = await first
                except StopAsyncIteration:
                    first = None
            if first is not None:
                await ready.put(dialect.event(first))
            async for chunk in rest:
                await ready.put(dialect.event(chunk))
        except MoonbaseError as exc:
            await ready.put(dialect.error(exc))
        except Exception as exc:
            log.exception("stream failed", exc_info=exc)
            await ready.put(dialect.error(exc))
    await ready.put(_END)
