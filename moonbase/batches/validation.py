"""Check a batch's input file line by line, under the online endpoint's own rules.

Each line must be a JSON object with a unique ``custom_id``, ``method``
"POST", ``url`` equal to the batch's endpoint and a ``body`` that the chat
service accepts (``ChatService.prepare``: the same validation, model lookup,
template and token budget as an online request); one model per file. Every
problem is reported with its line number.

A line is held to what an online body is: at most ``max_line_bytes`` (the
online body cap), parsed by the same JSON parser with its nesting limit, and
anything that goes wrong while checking it fails that line, never the worker
(a line that made the checker raise used to leave its batch in "validating",
retried at every poll ahead of every other account's batches).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from moonbase import bounds
from moonbase.chat.service import ChatService
from moonbase.errors import MoonbaseError
from moonbase.schemas.chat import ChatCompletionRequest
from moonbase.store.repositories.projects import owning
from moonbase.store.tables import Batch, BatchLine

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 100


@dataclass
class Checked:
    lines: list[BatchLine] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None

    def fail(self, line: int, code: str, message: str, param: str | None = None) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


async def split_lines(
    chunks: AsyncIterator[bytes], max_bytes: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """(1-based number, bytes) of each line of a streamed file; None in place of
    a line longer than ``max_bytes``, whose bytes are skipped, not kept."""
    number = 0
    parts: list[bytes] = []  # the line so far, joined once it ends
    size = 0
    for_long = False  # the current line is past max_bytes: drop its bytes
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            if for_long or size + end - start > max_bytes:
                yield number, None
            else:
                yield number, b"".join([*parts, chunk[start:end]])
            parts, size, for_long = [], 0, False
            start = end + 1
        size += len(chunk) - start
        if size > max_bytes:
            parts, for_long = [], True
        elif not for_long:
            parts.append(chunk[start:])
    if size and not for_long:
        yield number + 1, b"".join(parts)
    elif for_long:
        yield number + 1, None


async def check_input(
    batch: Batch,
    chunks: AsyncIterator[bytes],
    chat: ChatService,
    max_lines: int,
    max_line_bytes: int,
) -> Checked:
    checked = Checked()
    seen: set[str] = set()
    count = 0
    async for number, raw in split_lines(chunks, max_line_bytes):
        if raw is not None and not raw.strip():
            continue
        count += 1
        if count > max_lines:
            checked.fail(number, "too_many_lines", f"a batch may have at most {max_lines} lines")
            break
        if raw is None:
            checked.fail(
                number,
                "line_too_large",
                f"line {number} is over {max_line_bytes} bytes, the cap of a request body",
            )
            continue
        try:
            line = await _check_line(batch, number, raw, chat, checked, seen)
        except Exception as error:  # a checker's failure fails the line, not the worker
            log.exception("batch %s line %d could not be checked", batch.id, number)
            checked.fail(
                number,
                "invalid_request",
                f"line {number} could not be validated ({type(error).__name__})",
            )
            continue
        if line is not None:
            checked.lines.append(line)
    if count == 0:
        checked.fail(0, "empty_file", "the input file has no requests")
    return checked


async def _check_line(
    batch: Batch, number: int, raw: bytes, chat: ChatService, checked: Checked, seen: set[str]
) -> BatchLine | None:
    try:
        item = orjson.loads(raw)  # nesting past 1024 levels is a JSONDecodeError
    except orjson.JSONDecodeError as error:
        checked.fail(number, "invalid_json", f"line {number} is not valid JSON: {error}")
        return None
    if not isinstance(item, dict):
        checked.fail(number, "invalid_request", f"line {number} must be a JSON object")
        return None
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        checked.fail(number, "missing_custom_id", f"line {number} needs a custom_id", "custom_id")
        return None
    problem = bounds.CUSTOM_ID.check(custom_id, "custom_id")
    if problem is not None:
        checked.fail(number, "invalid_custom_id", f"line {number}: {problem}", "custom_id")
        return None
    if custom_id in seen:
        checked.fail(
            number, "duplicate_custom_id", f"custom_id {custom_id!r} is repeated", "custom_id"
        )
        return None
    seen.add(custom_id)
    if item.get("method") != "POST":
        checked.fail(number, "invalid_method", f"line {number}: method must be POST", "method")
        return None
    if item.get("url") != batch.endpoint:
        checked.fail(number, "invalid_url", f"line {number}: url must be {batch.endpoint}", "url")
        return None
    body = item.get("body")
    if not isinstance(body, dict):
        checked.fail(number, "invalid_body", f"line {number}: body must be an object", "body")
        return None
    try:
        encoded = orjson.dumps(body)  # nested past 255 levels: refused here
    except orjson.JSONEncodeError:
        checked.fail(number, "invalid_body", f"line {number}: body is nested too deeply", "body")
        return None
    try:
        # Through the same JSON parser as an online body, with its nesting limit.
        request = ChatCompletionRequest.model_validate_json(encoded)
        await chat.prepare(
            request,
            f"validate-{batch.id}-{number}",
            batch.account_id,
            project_id=owning(batch.account_id, batch.project_id),
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        checked.fail(number, "invalid_body", f"line {number}: body.{where}: {first['msg']}")
        return None
    except MoonbaseError as error:
        checked.fail(number, error.code or "invalid_body", f"line {number}: {error.message}")
        return None
    if checked.model is None:
        checked.model = request.model
    elif request.model != checked.model:
        checked.fail(
            number,
            "mixed_models",
            f"line {number} uses {request.model}; every line must use {checked.model}",
            "body.model",
        )
        return None
    return BatchLine(
        batch_id=batch.id,
        line=number,
        custom_id=custom_id,
        body_json=json.dumps(body, ensure_ascii=False),
        status="pending",
    )
