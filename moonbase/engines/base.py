"""The two narrow engine protocols, the requests they serve, the events they yield.

An ``Engine`` (the embedded llama.cpp one) takes a rendered, tokenized prompt
in a ``GenerationRequest``; a ``ChatEngine`` (an upstream OpenAI-compatible
server) takes the conversation itself in a ``ChatCall`` and templates, counts
and parses it on its own. Engines know nothing of accounts, billing or the
Moonshot wire format; chat/ reaches each kind through one backend of its own
(``chat.backend``), chosen once per model by the registry, and assembles the
events into responses. Stopping a generation is closing its iterator
(``aclose``), which is what a cancelled task or a disconnected client does.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]

# A character estimate of a prompt, where the engine cannot count (or has not yet).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
# A character from U+0800 up (CJK, kana, hangul, full-width forms, Indic and
# Thai scripts, emoji) counts a token, not a quarter: vocabularies hold one
# such character to a short word per token (at a quarter, a Chinese prompt
# was held and rate-limited at a fraction of what it was billed). They are
# the characters whose UTF-8 starts with one of these bytes, counted in C: a
# regular expression took 80 ms on a megabyte of alternating scripts.
_WIDE_LEADS = bytes(range(0xE0, 0xF5))
# A character from U+0080 to U+07FF (Cyrillic, Greek, Armenian, Hebrew,
# Arabic, accented Latin) counts half a token: SmolLM2's vocabulary gives
# Russian 0.74 tokens a character, Greek 0.82, Arabic 0.88, Hebrew 1.09;
# larger multilingual vocabularies give less, and a quarter (English's
# letters) let such a prompt through the TPM limit at a third of its size.
_TWO_BYTE_LEADS = bytes(range(0xC2, 0xE0))
TWO_BYTE_CHARS_PER_TOKEN = 2


class ChatTemplateError(ValueError):
    """The model's chat template refused the conversation (e.g. roles in an
    order it forbids): the client's mistake, not the engine's failure."""


@dataclass(frozen=True)
class MediaInput:
    """An image or video of a message, fetched and checked by the platform.

    Only engines whose capabilities say they read the kind ever receive one;
    an upstream engine passes it on as an OpenAI content part.
    """

    kind: Literal["image", "video"]
    mime_type: str
    data: bytes
    width: int
    height: int
    duration_ms: int | None = None
    tokens: int = 0  # the platform's estimate of its share of the prompt


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation: its text, and its media in message order."""

    role: str
    content: str
    name: str | None = None
    media: tuple[MediaInput, ...] = ()


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class JsonConstraint:
    """The output must be one JSON object, matching ``schema`` when one is given.

    Engines enforce it while decoding (a grammar, guided decoding), so even a
    small model returns output that parses.
    """

    schema: dict[str, Any] | None = None
    # Lazy (tool calls under tool_choice "auto"): the output is free text until
    # the model begins to write ``opening``; from there each value is
    # ``opening`` + a JSON value (matching ``schema``) + ``closing``, at most
    # ``max_values`` of them, and then the output ends. An empty ``opening``
    # (Llama 3.x) holds only a reply that begins with the value.
    opening: str | None = None
    closing: str = ""
    max_values: int = 1


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt_tokens: tuple[int, ...]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    n: int = 1
    # A hint for prefix-cache placement (the slot last used with the same key).
    cache_key: str | None = None
    constraint: JsonConstraint | None = None


@dataclass(frozen=True)
class ChatCall:
    """A chat request for an engine that applies its own chat template and
    parses its own output: an upstream OpenAI-compatible server.

    ``body`` is the client's request as it was sent (only the fields it set),
    with media resolved to data URLs; the platform's decisions ride beside it.
    """

    request_id: str
    body: dict[str, Any]
    max_tokens: int
    sampling: SamplingParams
    n: int
    thinking: bool  # the model should reason (Moonshot ``thinking``, or its default)
    keep_reasoning: bool  # history reasoning_content goes back to the model
    first_call_index: int  # tool-call ids continue the conversation's numbering
    prompt_estimate: int  # until the engine reports its own count
    stream: bool


@dataclass(frozen=True)
class PromptProcessed:
    """First event of every generation: the prompt is in the KV cache."""

    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class TextDelta:
    index: int
    text: str  # empty: tokens whose text is held back (tool calls, sent parsed at the end)
    # Completion tokens produced since the previous delta of this choice, so
    # that a consumer who stops early still knows what was generated (billing).
    tokens: int = 0


@dataclass(frozen=True)
class ReasoningDelta:
    """Reasoning (``reasoning_content``), apart from the answer's text."""

    index: int
    text: str
    tokens: int = 0


@dataclass(frozen=True)
class ToolCallsMade:
    """A choice's tool calls, whole, from an engine that parses calls itself."""

    index: int
    calls: tuple[dict[str, Any], ...]  # OpenAI tool_calls objects, ids normalised


@dataclass(frozen=True)
class ChoiceFinished:
    index: int
    finish_reason: FinishReason
    completion_tokens: int
    # The stop string that ended the choice, where the engine knows it
    # (Anthropic's ``stop_sequence`` names it).
    stop_sequence: str | None = None


@dataclass(frozen=True)
class UsageReported:
    """The engine's own count of the whole request; it replaces the running tally."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


EngineEvent = PromptProcessed | TextDelta | ChoiceFinished
# What chat/ consumes: an engine's events, reasoning split out of them (or
# reported by an upstream), and an upstream's own calls and usage.
ChatEvent = EngineEvent | ReasoningDelta | ToolCallsMade | UsageReported


@dataclass(frozen=True)
class EngineCapabilities:
    context_length: int
    supports_image_in: bool = False
    supports_video_in: bool = False
    model_name: str = ""
    # The model writes its own reasoning between <think> and </think>;
    # starts_open: the chat template opens that block in the prompt.
    native_reasoning: bool = False
    reasoning_starts_open: bool = False
    # A ChatEngine: it takes whole conversations (an upstream server).
    takes_conversations: bool = False
    # How the model writes tool calls, read from its chat template
    # (chat/tool_formats.py: hermes, llama3, mistral, mistral-args).
    tool_format: str = "hermes"


@dataclass(frozen=True)
class EngineHealth:
    """An engine's state now: typed for readiness and metrics, ``details`` for people."""

    ready: bool  # it can take a request now
    active: int  # sequences generating (upstream: requests in flight from here)
    queued: int = 0  # requests waiting for a slot
    healthy_replicas: int | None = None  # upstream engines: replicas not ejected
    details: dict[str, Any] = field(default_factory=dict)  # what /health shows


@runtime_checkable
class ChatEngine(Protocol):
    """An engine that takes whole conversations (it templates and parses itself)."""

    @property
    def capabilities(self) -> EngineCapabilities: ...

    async def count_tokens(self, model_id: str, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of ``messages`` as the engine counts them."""
        ...

    def chat(self, call: ChatCall) -> AsyncGenerator[ChatEvent, None]:
        """Stream events for ``call``; closing the iterator aborts it."""
        ...

    async def health(self) -> EngineHealth: ...

    async def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """What the platform needs of an inference engine, and nothing more."""

    @property
    def capabilities(self) -> EngineCapabilities: ...

    async def render_prompt(
        self, turns: list[ChatTurn], assistant_prefix: str | None = None
    ) -> tuple[int, ...]:
        """Apply the model's chat template (with the generation prompt) and tokenize.

        ``assistant_prefix`` (partial mode) is the start of the reply: the
        prompt ends with it, so generation continues it.
        """
        ...

    def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        """Stream events for ``request``; closing the iterator aborts it."""
        ...

    async def health(self) -> EngineHealth: ...

    async def close(self) -> None: ...


def estimate_tokens(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """A prompt's size (wire messages, and tools as JSON) from its characters,
    for engines that cannot count."""
    texts = [json.dumps(tool, ensure_ascii=False) for tool in tools or ()]
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += (part.get("text", "") for part in content if isinstance(part, dict))
        texts += (json.dumps(call, ensure_ascii=False) for call in message.get("tool_calls") or ())
        for tool in message.get("tools") or ():  # a system message's own tools
            texts.append(json.dumps(tool, ensure_ascii=False))
    chars = wide = two_byte = 0
    for text in texts:
        chars += len(text)
        if not text.isascii():  # the common case skips the count
            data = text.encode("utf-8", "surrogatepass")
            wide += len(data) - len(data.translate(None, _WIDE_LEADS))
            two_byte += len(data) - len(data.translate(None, _TWO_BYTE_LEADS))
    narrow = chars - wide - two_byte
    size = narrow / CHARS_PER_TOKEN + two_byte / TWO_BYTE_CHARS_PER_TOKEN + wide
    return math.ceil(size) + TOKENS_PER_MESSAGE * len(messages)
