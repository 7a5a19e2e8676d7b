"""Wire models of Anthropic's Messages API, as the ``anthropic`` SDKs send it.

They check shapes only; ``anthropic.translate`` turns a request into the
platform's own chat request, where the model's rules apply. Unknown fields
(``cache_control``, ``citations``, ``service_tier``, ``context_management``,
beta extras) are ignored, as the platform ignores vendor extras: cache-control
markers change nothing here, since the engines cache prefixes by themselves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from moonbase import bounds
from moonbase.schemas.base import WireModel
from moonbase.schemas.chat import MAX_TOOLS

Number = StrictInt | StrictFloat


class TextBlock(WireModel):
    type: Literal["text"]
    text: StrictStr


class Base64Source(WireModel):
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class UrlSource(WireModel):
    type: Literal["url"]
    url: StrictStr


class ImageBlock(WireModel):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(WireModel):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]


ToolResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(WireModel):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[ToolResultPart] | None = None
    is_error: StrictBool = False


class ThinkingBlock(WireModel):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr | None = None


class RedactedThinkingBlock(WireModel):
    type: Literal["redacted_thinking"]
    data: StrictStr


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(WireModel):
    # "system": a system message mid-conversation (Claude Code sends them,
    # under the mid-conversation-system beta).
    role: Literal["user", "assistant", "system"]
    content: StrictStr | list[ContentBlock]


class Tool(WireModel):
    # Client tools only: Anthropic's server tools (bash_…, web_search_…) have
    # another ``type`` and are refused by name in translation.
    type: StrictStr | None = None
    name: StrictStr
    description: StrictStr | None = None
    input_schema: dict[str, Any] | None = None  # required of client tools (translate checks)


class ToolChoice(WireModel):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool = False


class ThinkingConfig(WireModel):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: StrictInt | None = None


class Metadata(WireModel):
    # Kept as the usage record's safety identifier: bounded as its column is.
    user_id: Annotated[str, bounds.SAFETY_IDENTIFIER] | None = None


class CountTokensRequest(WireModel):
    model: StrictStr
    messages: list[MessageParam] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: StrictInt = Field(ge=1)
    stop_sequences: list[StrictStr] | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = Field(None, ge=0)
    metadata: Metadata | None = None
    stream: StrictBool = False
