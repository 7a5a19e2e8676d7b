"""Wire messages -> engine-neutral chat turns, refusing what cannot be served.

Partial mode: a last assistant message with ``partial: true`` is not a turn
but the beginning of the reply, which the model continues. Tools: the tool
block joins the system prompt, assistant tool calls are written as the model
writes them, and tool results come back as user turns (every template accepts
those). Media parts arrive resolved (``chat.media``) and ride on their turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from moonbase.chat.media import MediaKey
from moonbase.chat.tool_formats import HERMES, ToolFormat
from moonbase.chat.tools import ToolPlan, history_text, system_block
from moonbase.engines.base import ChatTurn, MediaInput
from moonbase.errors import BadRequestError, InternalError
from moonbase.schemas.chat import ChatCompletionRequest, Message, TextPart

Media = Mapping[MediaKey, MediaInput]

STOP_MAX_COUNT = 5
STOP_MAX_BYTES = 32


@dataclass(frozen=True)
class Conversation:
    turns: list[ChatTurn]
    assistant_prefix: str | None = None  # partial mode: the reply starts with this

    @property
    def media_tokens(self) -> int:
        return sum(item.tokens for turn in self.turns for item in turn.media)


def to_conversation(
    messages: list[Message],
    tools: ToolPlan | None = None,
    keep_reasoning: bool = False,
    media: Media | None = None,
    tool_format: ToolFormat = HERMES,
) -> Conversation:
    """Turns for the template. History ``reasoning_content`` is dropped unless
    ``keep_reasoning`` (kimi-k2.6 ``thinking.keep: "all"``) puts it back.
    ``media`` holds every image and video part, already resolved. The request's
    tools join the first system turn; a system message's own tools join that
    message, so the model meets them where the conversation loaded them."""
    fmt = tools.format if tools is not None else tool_format
    conversation = _conversation(messages, keep_reasoning, media or {}, tools, fmt)
    offered = tools.declared_at(None) if tools is not None else []
    if not offered:
        return conversation
    turns = list(conversation.turns)
    block = system_block(offered, fmt)
    if turns and turns[0].role == "system":
        first = turns[0]
        turns[0] = ChatTurn("system", f"{first.content}\n\n{block}", first.name, first.media)
    else:
        turns.insert(0, ChatTurn("system", block))
    return Conversation(turns, conversation.assistant_prefix)


def _conversation(
    messages: list[Message], keep: bool, media: Media, tools: ToolPlan | None, fmt: ToolFormat
) -> Conversation:
    builtin_ids = {
        call.id
        for message in messages
        for call in message.tool_calls or []
        if call.function.name.startswith("$")
    }
    for index, message in enumerate(messages):
        if message.role == "tool" and message.tool_call_id in builtin_ids:
            raise BadRequestError(
                "built-in tools (such as $web_search) need a provider, and none is configured "
                "on this deployment",
                param=f"messages[{index}]",
            )
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message.partial and (index != last or message.role != "assistant"):
            raise BadRequestError(
                "partial: true is only allowed on the last message, an assistant message",
                param=f"messages[{index}].partial",
            )
    whole = messages[:last] if messages[last].partial else messages
    turns = [_to_turn(i, m, keep, media, tools, fmt) for i, m in enumerate(whole)]
    if messages[last].partial:
        prefix, _ = _content_of(last, messages[last], media)
        return Conversation(turns, assistant_prefix=prefix)
    return Conversation(turns)


def _to_turn(
    index: int,
    message: Message,
    keep: bool,
    media: Media,
    tools: ToolPlan | None,
    fmt: ToolFormat,
) -> ChatTurn:
    where = f"messages[{index}]"
    text, attached = _content_of(index, message, media)
    if keep and message.role == "assistant" and message.reasoning_content:
        text = f"<think>{message.reasoning_content}</think>\n{text}"
    if message.role == "tool":
        if not message.tool_call_id:
            raise BadRequestError(
                f"{where}: a tool message needs tool_call_id", param=f"{where}.tool_call_id"
            )
        return ChatTurn("user", f"<tool_response>{text}</tool_response>", media=attached)
    if message.tool_calls:
        return ChatTurn("assistant", history_text(message, text, fmt), message.name)
    if not text and not attached and message.role not in ("assistant", "system"):
        raise BadRequestError(f"{where}.content must not be empty", param=f"{where}.content")
    if message.role == "system":
        loaded = tools.declared_at(index) if tools is not None else []
        if not text and not message.tools:
            raise BadRequestError(f"{where}.content must not be empty", param=f"{where}.content")
        if loaded:  # dynamically loaded tools
            block = system_block(loaded, fmt)
            text = f"{text}\n\n{block}" if text else block
    if message.role == "assistant" and not text and message.reasoning_content is None:
        raise BadRequestError(
            f"{where}: an assistant message needs content, reasoning_content or tool_calls",
            param=f"{where}.content",
        )
    return ChatTurn(message.role, text, message.name, attached)


def _content_of(index: int, message: Message, media: Media) -> tuple[str, tuple[MediaInput, ...]]:
    content = message.content
    if content is None or isinstance(content, str):
        return content or "", ()
    texts: list[str] = []
    attached: list[MediaInput] = []
    for part_index, part in enumerate(content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif (found := media.get((index, part_index))) is not None:
            attached.append(found)
        else:  # chat.media resolves every media part before this runs
            raise InternalError(f"messages[{index}].content[{part_index}] was not resolved")
    return "\n".join(texts), tuple(attached)


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if len(stops) > STOP_MAX_COUNT:
        raise BadRequestError(
            f"stop accepts at most {STOP_MAX_COUNT} strings, got {len(stops)}", param="stop"
        )
    for item in stops:
        if len(item.encode("utf-8")) > STOP_MAX_BYTES:
            raise BadRequestError(
                f"each stop string may be at most {STOP_MAX_BYTES} bytes: {item[:40]!r}",
                param="stop",
            )
    return tuple(s for s in stops if s)


def check_partial_mode(request: ChatCompletionRequest) -> None:
    """Partial mode continues free text: it cannot be combined with JSON mode."""
    partial = request.messages[-1].partial
    if partial and request.response_format and request.response_format.type == "json_object":
        raise BadRequestError(
            "partial mode cannot be combined with response_format json_object",
            param="response_format",
        )
