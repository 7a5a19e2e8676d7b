"""What the OpenAI-compatible engines differ in, both ways.

Requests: Moonshot's ``thinking`` becomes the chat template's kwargs on vLLM,
SGLang and llama-server (Kimi's templates read ``thinking`` and
``preserve_thinking``); partial mode (a last assistant message with
``partial: true``) becomes vLLM/SGLang's ``continue_final_message``, while
llama-server continues a trailing assistant message by itself. Tools that
a system message loads (Moonshot's dynamically loaded tools) join the
request's ``tools``. Moonshot itself gets the request as the client wrote it.

Responses: reasoning arrives as ``reasoning_content`` (llama-server, older
vLLM, Moonshot) or ``reasoning`` (newer vLLM, SGLang); cached prompt tokens
as ``usage.cached_tokens`` (Moonshot), ``usage.prompt_tokens_details``
(vLLM, SGLang, OpenAI) or ``timings.cache_n`` (llama-server).
"""

from __future__ import annotations

from typing import Any

from moonbase.engines.base import ChatCall

TEMPLATE_FLAVOURS = frozenset({"vllm", "sglang", "llamacpp"})
# Fields only Moonshot understands; strict servers refuse unknown fields.
MOONSHOT_ONLY = ("thinking", "prompt_cache_key", "safety_identifier", "max_completion_tokens")


def request_body(call: ChatCall, flavour: str, model: str) -> dict[str, Any]:
    """The body to POST to ``{url}/chat/completions`` for ``call``."""
    body = dict(call.body)
    body["model"] = model
    body["stream"] = call.stream
    if call.stream:
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream_options", None)
    if flavour == "moonshot":
        return body
    for field in MOONSHOT_ONLY:
        body.pop(field, None)
    sampling = call.sampling
    body.update(
        max_tokens=call.max_tokens,
        n=call.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
    )
    body["messages"], loaded = without_message_tools(body["messages"])
    if loaded:
        body["tools"] = [*body.get("tools", ()), *loaded]
    if "tools" in body:
        # Moonshot's builtin functions ($web_search) run on Moonshot only.
        tools = [tool for tool in body["tools"] if tool.get("type") == "function"]
        if tools:
            body["tools"] = tools
        else:
            body.pop("tools")
            body.pop("tool_choice", None)
    messages = [dict(message) for message in body["messages"]]
    partial = messages[-1].pop("partial", False)
    for message in messages:
        message.pop("partial", None)
    body["messages"] = messages
    if partial and flavour in ("vllm", "sglang"):
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    if flavour in TEMPLATE_FLAVOURS:
        kwargs = {"thinking": call.thinking, "enable_thinking": call.thinking}
        if call.keep_reasoning:
            kwargs["preserve_thinking"] = True
        body["chat_template_kwargs"] = kwargs
    return body


def without_message_tools(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages without the tools their system messages load, and those tools.

    Dynamically loaded tools are Moonshot's: other servers' chat templates take
    tools at the request's level only, so they are merged there (the model
    still sees every tool; names are unique across the request)."""
    loaded: list[dict[str, Any]] = []
    plain = []
    for message in messages:
        if "tools" in message:
            message = dict(message)
            loaded += message.pop("tools") or ()
            if not message.get("content"):
                continue  # it only carried tools: as a turn of its own it would add tokens
        plain.append(message)
    return plain, loaded


def reasoning_of(delta: dict[str, Any]) -> str | None:
    """The reasoning text of a message or delta, wherever the engine put it."""
    text = delta.get("reasoning_content")
    if text is None:
        text = delta.get("reasoning")
    return text if isinstance(text, str) else None


def cached_tokens_of(payload: dict[str, Any]) -> int:
    """Prompt tokens served from the engine's cache, from a response or final chunk."""
    usage = payload.get("usage") or {}
    if isinstance(usage.get("cached_tokens"), int):
        return int(usage["cached_tokens"])
    details = usage.get("prompt_tokens_details") or {}
    if isinstance(details.get("cached_tokens"), int):
        return int(details["cached_tokens"])
    timings = payload.get("timings") or {}
    if isinstance(timings.get("cache_n"), int):
        return int(timings["cache_n"])
    return 0


def tool_call_id(name: str, index: int) -> str:
    """Kimi's call ids: ``functions.{name}:{index}``, numbered across the conversation."""
    return f"functions.{name}:{index}"
