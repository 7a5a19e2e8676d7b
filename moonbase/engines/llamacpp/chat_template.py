"""The model's own chat template, read from the GGUF metadata and rendered with Jinja.

This is how Hugging Face transformers renders templates (a sandboxed
environment, ``raise_exception`` and ``strftime_now`` helpers), so a GGUF's
template means the same thing here as where it was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from moonbase.engines.base import ChatTemplateError, ChatTurn

# ChatML, for GGUFs that carry no template of their own.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self.source = source or FALLBACK_TEMPLATE
        self._template = env.from_string(self.source)
        self._bos_token = bos_token
        self._eos_token = eos_token

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
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
            )
        except ChatTemplateError:
            raise
        except TemplateError as exc:
            raise ChatTemplateError(f"the model's chat template failed: {exc}") from exc
