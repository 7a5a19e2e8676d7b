"""What the chat pipeline generated, in Anthropic's shape: a whole message, or
its stream of events.

Both read the pipeline's events and ``Tally`` (``ChatService.run``), so a
message and its stream say the same: thinking first (a ``thinking`` block
with a signature), then text, then ``tool_use`` blocks with their parsed
``input``. Tool-use ids are Anthropic's ``toolu_…``; the client sends them
back in ``tool_result`` blocks, and the pipeline takes any id.

Usage follows Anthropic's split: ``input_tokens`` are the prompt tokens not
read from the prefix cache, ``cache_read_input_tokens`` those that were, so
their sum is what ``count_tokens`` answers and what the platform bills.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

from moonbase.chat.tally import Tally
from moonbase.engines.base import (
    ChatEvent,
    ChoiceFinished,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
    ToolCallsMade,
)

# input_json_delta pieces: the SDKs rebuild the input from them as it arrives.
JSON_PIECE_CHARS = 64


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def tool_use_id() -> str:
    return f"toolu_{secrets.token_hex(12)}"


def signature(thinking: str) -> str:
    """A thinking block's signature: its digest. Anthropic's clients send it
    back unchanged with the block; nothing here depends on it."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def stop_reason(tally: Tally) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of the one choice."""
    if tally.tool_calls.get(0):
        return "tool_use", None
    if tally.finish_reasons.get(0) == "length":
        return "max_tokens", None
    matched = tally.stop_sequences.get(0)
    if matched is not None:
        return "stop_sequence", matched
    return "end_turn", None


def usage(tally: Tally) -> dict[str, int]:
    cached = min(tally.cached_tokens, tally.prompt_tokens)
    return {
        "input_tokens": tally.prompt_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": tally.total_completion_tokens,
    }


def tool_use(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call as a ``tool_use`` block (arguments parsed)."""
    function = call["function"]
    try:
        parsed = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:
        parsed = {}
    return {
        "type": "tool_use",
        "id": tool_use_id(),
        "name": function["name"],
        "input": parsed if isinstance(parsed, dict) else {},
    }


def message(message_id: str, model: str, tally: Tally) -> dict[str, Any]:
    """The whole reply of a request that did not stream."""
    content: list[dict[str, Any]] = []
    thinking = tally.reasoning_text(0)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": signature(thinking)})
    text = tally.text(0)
    if text:
        content.append({"type": "text", "text": text})
    content += [tool_use(call) for call in tally.tool_calls.get(0, ())]
    reason, sequence = stop_reason(tally)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(tally),
    }


BlockKind = Literal["thinking", "text"]


@dataclass
class _Blocks:
    """The content blocks of a streamed reply: which is open, and its index."""

    index: int = -1
    open: BlockKind | None = None
    thinking: list[str] = field(default_factory=list)

    def start(self, kind: BlockKind) -> list[dict[str, Any]]:
        events = self.stop()
        self.index += 1
        self.open = kind
        block: dict[str, Any] = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return events

    def stop(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        events: list[dict[str, Any]] = []
        if self.open == "thinking":
            delta = {"type": "signature_delta", "signature": signature("".join(self.thinking))}
            events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        events.append({"type": "content_block_stop", "index": self.index})
        self.open = None
        return events

    def delta(self, kind: BlockKind, text: str) -> list[dict[str, Any]]:
        events = self.start(kind) if self.open != kind else []
        if kind == "thinking":
            self.thinking.append(text)
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "text_delta", "text": text}
        events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return events

    def tool_uses(self, calls: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
        events = self.stop()
        for call in calls:
            block = tool_use(call)
            arguments = json.dumps(block["input"], ensure_ascii=False)
            self.index += 1
            events.append(
                {
                    "type": "content_block_start",
                    "index": self.index,
                    "content_block": {**block, "input": {}},
                }
            )
            for start in range(0, len(arguments), JSON_PIECE_CHARS):
                piece = arguments[start : start + JSON_PIECE_CHARS]
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
            events.append({"type": "content_block_stop", "index": self.index})
        return events


async def stream_events(
    events: AsyncGenerator[ChatEvent, None], message_id: str, model: str, tally: Tally
) -> AsyncGenerator[dict[str, Any], None]:
    """Anthropic's event sequence for a streamed reply. ``message_start`` waits
    for the engine to take the prompt, so a refusal before it is a plain HTTP
    error; its usage is the prompt's, the final ``message_delta`` has it all."""
    blocks = _Blocks()
    async for event in events:
        if isinstance(event, PromptProcessed):
            start = {**message(message_id, model, tally), "stop_reason": None, "content": []}
            start["usage"] = {**usage(tally), "output_tokens": 0}
            yield {"type": "message_start", "message": start}
            yield {"type": "ping"}
        elif isinstance(event, ReasoningDelta) and event.text:
            for out in blocks.delta("thinking", event.text):
                yield out
        elif isinstance(event, TextDelta) and event.text:
            for out in blocks.delta("text", event.text):
                yield out
        elif isinstance(event, ToolCallsMade):
            for out in blocks.tool_uses(event.calls):
                yield out
        elif isinstance(event, ChoiceFinished):
            for out in blocks.stop():
                yield out
    reason, sequence = stop_reason(tally)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": usage(tally),
    }
    yield {"type": "message_stop"}
