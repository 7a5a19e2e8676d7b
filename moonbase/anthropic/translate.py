"""Anthropic Messages requests in, the platform's chat requests out.

The Anthropic surface is a translation onto the one chat pipeline: a
``MessagesRequest`` becomes a ``ChatCompletionRequest`` (so the model's rules,
tools and their grammar, thinking, media, admission and billing are the ones
``/v1/chat/completions`` has), and what the pipeline produced goes back in
Anthropic's shape (``anthropic.reply``). Messages map as:

- ``system`` (a string or text blocks) -> one system message, and so does a
  ``system`` turn in the middle of the conversation;
- a user turn's ``tool_result`` blocks -> ``tool`` messages (before the rest
  of that turn, which follows them), ``text``/``image`` -> a user message;
- an assistant turn's ``text`` -> content, ``thinking`` -> reasoning_content,
  ``tool_use`` -> tool_calls (``redacted_thinking`` has nothing readable);
- a final assistant turn -> partial mode: the reply continues it (Anthropic's
  prefill).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from moonbase.anthropic.schemas import (
    CountTokensRequest,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import ChatCompletionRequest

# Anthropic's own floor for an extended-thinking budget.
MIN_THINKING_BUDGET = 1024


def resolve_model(model: str, aliases: Mapping[str, str]) -> str:
    """The catalog id a client's model name lands on: itself, or the first
    alias pattern (``claude-*``) that matches it."""
    if model in aliases:
        return aliases[model]
    for pattern, target in aliases.items():
        if fnmatch.fnmatchcase(model, pattern):
            return target
    return model


def to_chat_request(
    request: MessagesRequest | CountTokensRequest, model: str, *, stream: bool = False
) -> ChatCompletionRequest:
    """The platform's chat request for ``request`` (a count too: it measures
    the same prompt a completion would bill)."""
    body: dict[str, Any] = {"model": model, "messages": _messages(request), "stream": stream}
    if request.tools:
        body["tools"] = [_tool(index, tool) for index, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        body.update(_tool_choice(request.tool_choice))
    if request.thinking is not None and request.thinking.type != "adaptive":
        body["thinking"] = {"type": request.thinking.type}
    if isinstance(request, MessagesRequest):
        _check_thinking_budget(request)
        body["max_completion_tokens"] = request.max_tokens
        if request.stop_sequences:
            body["stop"] = request.stop_sequences
        for name in ("temperature", "top_p"):
            if getattr(request, name) is not None:
                body[name] = getattr(request, name)
        if request.metadata is not None and request.metadata.user_id:
            # Anthropic's end-user id is what Moonshot calls the safety identifier.
            body["safety_identifier"] = request.metadata.user_id
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:  # what the chat request's own bounds refuse
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadRequestError(f"{where}: {error['msg']}") from None


def _check_thinking_budget(request: MessagesRequest) -> None:
    thinking = request.thinking
    if thinking is None or thinking.type != "enabled":
        return
    budget = thinking.budget_tokens
    if budget is None:
        raise BadRequestError("thinking.budget_tokens: Field required", param="thinking")
    if budget < MIN_THINKING_BUDGET:
        raise BadRequestError(
            f"thinking.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}",
            param="thinking",
        )
    if budget >= request.max_tokens:
        raise BadRequestError(
            "max_tokens must be greater than thinking.budget_tokens", param="max_tokens"
        )


def _messages(request: MessagesRequest | CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        system = request.system
        text = system if isinstance(system, str) else "\n\n".join(b.text for b in system)
        messages.append({"role": "system", "content": text})
    for index, message in enumerate(request.messages):
        if isinstance(message.content, list) and not message.content:
            last_assistant = message.role == "assistant" and index == len(request.messages) - 1
            if not last_assistant:  # Anthropic's rule: only a final assistant turn may be empty
                raise BadRequestError(
                    f"messages.{index}: all messages must have non-empty content except for "
                    "the optional final assistant message",
                    param=f"messages[{index}].content",
                )
        if message.role == "user":
            messages += _user(index, message)
        elif message.role == "system":
            messages.append({"role": "system", "content": _system_text(index, message)})
        else:
            messages.append(_assistant(message))
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        if last.get("tool_calls"):
            raise BadRequestError(
                "the last message is an assistant turn with tool_use: send its tool_result "
                "in a user turn",
                param="messages",
            )
        if last.get("content"):
            last["partial"] = True  # a prefill: the reply continues it
        else:
            messages.pop()  # an empty final assistant turn: nothing to continue
    return messages


def _system_text(index: int, message: MessageParam) -> str:
    if isinstance(message.content, str):
        return message.content
    texts = []
    for position, block in enumerate(message.content):
        if not isinstance(block, TextBlock):
            raise BadRequestError(
                f"messages.{index}.content.{position}: a system message holds text blocks only",
                param=f"messages[{index}].content[{position}]",
            )
        texts.append(block.text)
    return "\n\n".join(texts)


def _user(index: int, message: MessageParam) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            results.append(_tool_result(block))
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
        else:
            raise BadRequestError(
                f"messages.{index}.content.{position}: a {block.type} block belongs in an "
                "assistant turn",
                param=f"messages[{index}].content[{position}]",
            )
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_result(block: ToolResultBlock) -> dict[str, Any]:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        # Images in a tool result have no place in a tool message: their text only.
        text = "\n".join(part.text for part in content if isinstance(part, TextBlock))
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _image(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _assistant(message: MessageParam) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, ensure_ascii=False)
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        # redacted_thinking: encrypted elsewhere, nothing to read here
    assistant: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if reasoning:
        assistant["reasoning_content"] = "".join(reasoning)
    if calls:
        assistant["tool_calls"] = calls
    return assistant


def _tool(index: int, tool: Any) -> dict[str, Any]:
    if tool.type not in (None, "custom"):
        raise BadRequestError(
            f"tools.{index}: server tool {tool.type!r} is not available on this platform; "
            "declare client tools (name, description, input_schema)",
            param=f"tools[{index}]",
        )
    if tool.input_schema is None:
        where = f"tools.{index}.input_schema"
        raise BadRequestError(f"{where}: Field required", param=f"tools[{index}]")
    function = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if choice.type == "auto":
        out["tool_choice"] = "auto"
    elif choice.type == "any":
        out["tool_choice"] = "required"
    elif choice.type == "none":
        out["tool_choice"] = "none"
    else:
        if not choice.name:
            raise BadRequestError("tool_choice.name: Field required", param="tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    if choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out
