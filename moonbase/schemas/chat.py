"""Wire models of POST /v1/chat/completions, mirroring the spec.

They check shapes and sizes only; chat/ applies the model's rules (sampling
ranges, tools, response formats, media, partial mode, thinking).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from moonbase import bounds
from moonbase.schemas.base import StrictWireModel, WireModel

Number = StrictInt | StrictFloat


class TextPart(WireModel):
    type: Literal["text"]
    text: StrictStr


class MediaURL(WireModel):
    url: StrictStr
    id: StrictStr | None = None
    detail: StrictStr | None = None


class ImagePart(WireModel):
    type: Literal["image_url"]
    image_url: MediaURL | StrictStr


class VideoPart(WireModel):
    type: Literal["video_url"]
    video_url: MediaURL | StrictStr


ContentPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]


class FunctionCall(WireModel):
    name: StrictStr
    arguments: StrictStr = ""


class ToolCall(WireModel):
    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionCall
    index: StrictInt | None = None


class FunctionDefinition(WireModel):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ToolDefinition(WireModel):
    type: Literal["function", "builtin_function"]
    function: FunctionDefinition


MAX_TOOLS = 128


class Message(WireModel):
    role: Literal["system", "user", "assistant", "tool"]
    # The spec requires content; only assistant turns (which may carry just
    # tool calls or reasoning) may leave it out. validate_default runs the
    # check when the field is missing.
    content: StrictStr | list[ContentPart] | None = Field(None, validate_default=True)
    name: StrictStr | None = None
    partial: StrictBool = False
    reasoning_content: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None
    # Dynamically loaded tools: a system message may declare tools that the
    # model may call from that point of the conversation (chat/tools.py).
    tools: list[ToolDefinition] | None = Field(None, max_length=MAX_TOOLS)

    @field_validator("content")
    @classmethod
    def _content_unless_assistant(
        cls, content: str | list[Any] | None, info: ValidationInfo
    ) -> str | list[Any] | None:
        role = info.data.get("role")
        if content is None and role is not None and role != "assistant":
            raise PydanticCustomError("missing", "Field required")
        return content


class JsonSchemaFormat(WireModel):
    name: StrictStr
    schema_: dict[str, Any] = Field(alias="schema")
    strict: StrictBool = True
    description: StrictStr | None = None


class ResponseFormat(WireModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(WireModel):
    include_usage: StrictBool = False


class ThinkingOption(StrictWireModel):
    type: Literal["enabled", "disabled"]
    keep: Literal["all"] | None = None


class ChatCompletionRequest(WireModel):
    model: StrictStr
    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1, description="deprecated")
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = None
    top_p: Number | None = None
    n: StrictInt | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[ToolDefinition] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    # OpenAI's field: false holds a reply to one tool call.
    parallel_tool_calls: StrictBool | None = None
    thinking: ThinkingOption | None = None
    # Both are kept in the usage record: bounded as its columns are.
    prompt_cache_key: Annotated[str, bounds.PROMPT_CACHE_KEY] | None = None
    safety_identifier: Annotated[str, bounds.SAFETY_IDENTIFIER] | None = None


# -- responses -----------------------------------------------------------------


class PromptTokensDetails(WireModel):
    cached_tokens: int = 0


class Usage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


class AssistantMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_extras(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for extra in ("reasoning_content", "tool_calls"):
            if data.get(extra) is None:
                data.pop(extra, None)  # plain replies look exactly like OpenAI's
        return data


class Choice(WireModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None


class ChatCompletion(WireModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
