"""Server-sent events: ``data: {json}`` per chunk, then ``data: [DONE]``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from fastapi.responses import StreamingResponse

from moonbase.api.error_handlers import sse_error_event
from moonbase.errors import MoonbaseError

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


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
) -> AsyncGenerator[str, None]:
    async with aclosing(rest):
        try:
            if first is not None:
                yield _event(first)
            async for chunk in rest:
                yield _event(chunk)
        except MoonbaseError as exc:
            yield sse_error_event(exc)
        except Exception as exc:
            log.exception("stream failed", exc_info=exc)
            yield sse_error_event(exc)
    yield "data: [DONE]\n\n"


def _event(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n"
