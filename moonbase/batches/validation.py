"""Check a batch's input file line by line, under the online endpoint's own rules.

Each line must be a JSON object with a unique ``custom_id``, ``method``
"POST", ``url`` equal to the batch's endpoint and a ``body`` that the chat
service accepts (``ChatService.prepare``: the same validation, model lookup,
template and token budget as an online request); one model per file. Every
problem is reported with its line number.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from moonbase.chat.service import ChatService
from moonbase.errors import MoonbaseError
from moonbase.schemas.chat import ChatCompletionRequest
from moonbase.store.tables import Batch, BatchLine

MAX_REPORTED_ERRORS = 100


@dataclass
class Checked:
    lines: list[BatchLine] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None

    def fail(self, line: int, code: str, message: str, param: str | None = None) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based number, bytes) of each line of a streamed file."""
    number = 0
    rest = b""
    async for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if rest:
        yield number + 1, rest


async def check_input(
    batch: Batch, chunks: AsyncIterator[bytes], chat: ChatService, max_lines: int
) -> Checked:
    checked = Checked()
    seen: set[str] = set()
    count = 0
    async for number, raw in split_lines(chunks):
        if not raw.strip():
            continue
        count += 1
        if count > max_lines:
            checked.fail(number, "too_many_lines", f"a batch may have at most {max_lines} lines")
            break
        line = await _check_line(batch, number, raw, chat, checked, seen)
        if line is not None:
            checked.lines.append(line)
    if count == 0:
        checked.fail(0, "empty_file", "the input file has no requests")
    return checked


async def _check_line(
    batch: Batch, number: int, raw: bytes, chat: ChatService, checked: Checked, seen: set[str]
) -> BatchLine | None:
    try:
        item = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        checked.fail(number, "invalid_json", f"line {number} is not valid JSON: {error}")
        return None
    if not isinstance(item, dict):
        checked.fail(number, "invalid_request", f"line {number} must be a JSON object")
        return None
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        checked.fail(number, "missing_custom_id", f"line {number} needs a custom_id", "custom_id")
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
        request = ChatCompletionRequest.model_validate(body)
        await chat.prepare(request, f"validate-{batch.id}-{number}", batch.account_id)
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
