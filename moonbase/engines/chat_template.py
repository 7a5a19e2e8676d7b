"""A model's own chat template (from a GGUF's metadata, or a Hugging Face
tokenizer folder) rendered with Jinja.

This is how Hugging Face transformers renders templates (a sandboxed
environment, ``raise_exception`` and ``strftime_now`` helpers, ``tojson``
keeping non-ASCII text, loop controls), so a template means the same thing
here as where it was written.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from moonbase.engines.base import ChatTemplateError, ChatTurn

# ChatML, for GGUFs that carry no template of their own.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tool_call_format(template: str | None) -> str:
    """The tool-call format a chat template teaches its model, by the markers
    it writes: Mistral's ``[TOOL_CALLS]`` (``[ARGS]`` in the newer form),
    Qwen/Hermes ``<tool_call>``, Llama 3.x's ``<|python_tag|>`` or its
    ``"parameters"`` JSON; ``hermes`` (the generic format) when it names none."""
    if not template:
        return "hermes"
    if "[TOOL_CALLS]" in template:
        return "mistral-args" if "[ARGS]" in template else "mistral"
    if "<tool_call>" in template:
        return "hermes"
    if "<|python_tag|>" in template or (
        "<|start_header_id|>" in template and '"parameters"' in template
    ):
        return "llama3"
    return "hermes"


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)


class ChatTemplate:
    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,
            extensions=[loopcontrols],
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self.source = source or FALLBACK_TEMPLATE
        self._template = env.from_string(self.source)
        self._bos_token = bos_token
        self._eos_token = eos_token

    @property
    def tool_format(self) -> str:
        """How the template's model writes tool calls (chat/tool_formats.py)."""
        return tool_call_format(self.source)

    @property
    def reasons_natively(self) -> bool:
        """The template knows a <think> block: the model writes its own reasoning."""
        return "<think>" in self.source

    def opens_reasoning(self) -> bool:
        """The generation prompt itself opens the <think> block (DeepSeek-R1 style)."""
        try:
            rendered = self.render([ChatTurn("user", "hi")])
        except ChatTemplateError:
            return False
        return rendered.rstrip().endswith("<think>")

    def render(self, turns: list[ChatTurn]) -> str:
        messages: list[dict[str, Any]] = []
        for turn in turns:
            message: dict[str, Any] = {"role": turn.role, "content": turn.content}
            if turn.name:
                message["name"] = turn.name
            messages.append(message)
        return self.render_messages(messages)

    def render_messages(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The prompt for wire-shaped messages (and tools, for templates that take
        them; None when there are none, as transformers passes it)."""
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
                tools=tools or None,
            )
        except ChatTemplateError:
            raise
        except TemplateError as exc:
            raise ChatTemplateError(f"the model's chat template failed: {exc}") from exc
