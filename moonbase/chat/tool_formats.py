"""How a model family writes its tool calls, chosen from its GGUF's chat template.

- ``hermes``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, one
  block per call (Qwen2.5, Qwen3, Hermes, SmolLM3; and the generic format
  used for any template that names none, SmolLM2's included);
- ``llama3``: a bare ``{"name": ..., "parameters": {...}}`` as the whole reply,
  maybe after ``<|python_tag|>`` (Llama 3.1, 3.2, 3.3);
- ``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``
  (Mistral 7B v0.3, Nemo), or ``[TOOL_CALLS]name[ARGS]{...}`` per call
  (``mistral-args``: Mistral Small 3.2, Devstral, Magistral).

``CallSplitter`` splits a choice's text into content and calls as it streams:
text that cannot begin a call goes out at once, a call is parsed the moment
it is complete (``ToolCallsMade``), and text that looked like a call but does
not parse is given back as content when the choice ends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from moonbase.engines.chat_template import tool_call_format

PYTHON_TAG = "<|python_tag|>"


@dataclass(frozen=True)
class ToolFormat:
    name: str
    opening: str  # what begins the calls ("" for Llama's bare JSON at the start)
    closing: str  # what ends one call ("" when the JSON's own end does)
    arguments_key: str  # "arguments", or Llama's "parameters"
    example: str  # how the system block shows a call
    max_calls: int = 3  # Llama 3.x templates take one call per turn

    def write_calls(self, calls: list[tuple[str, Any]]) -> str:
        """Calls of an earlier assistant turn, written as this family writes them."""
        objects = [{"name": name, self.arguments_key: arguments} for name, arguments in calls]
        dump = [json.dumps(call, ensure_ascii=False) for call in objects]
        if self.name == "mistral":
            return self.opening + json.dumps(objects, ensure_ascii=False)
        if self.name == "mistral-args":
            return "".join(
                f"{self.opening}{name}[ARGS]{json.dumps(arguments, ensure_ascii=False)}"
                for name, arguments in calls
            )
        if self.name == "llama3":
            return "\n".join(dump)
        return "".join(f"{self.opening}{call}{self.closing}" for call in dump)

    def complete_calls(self, text: str) -> tuple[list[dict[str, Any]], bool]:
        """The calls complete in ``text`` (which starts where the calls begin),
        as ``{"name", "arguments"}`` objects, and whether all of it parsed."""
        if self.name == "hermes":
            return _tagged_calls(text, self.opening, self.closing)
        if self.name == "mistral":
            return _json_values(text.removeprefix(self.opening), "arguments", array=True)
        if self.name == "mistral-args":
            return _args_calls(text, self.opening)
        body = text.lstrip().removeprefix(PYTHON_TAG)
        return _json_values(body, self.arguments_key, array=False)


HERMES = ToolFormat(
    "hermes",
    "<tool_call>",
    "</tool_call>",
    "arguments",
    '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>',
)
LLAMA3 = ToolFormat(
    "llama3",
    "",
    "",
    "parameters",
    '{"name": "<tool name>", "parameters": {<arguments as JSON>}}',
    max_calls=1,
)
MISTRAL = ToolFormat(
    "mistral",
    "[TOOL_CALLS]",
    "",
    "arguments",
    '[TOOL_CALLS][{"name": "<tool name>", "arguments": {<arguments as JSON>}}]',
)
MISTRAL_ARGS = ToolFormat(
    "mistral-args", "[TOOL_CALLS]", "", "arguments", "[TOOL_CALLS]<tool name>[ARGS]{<arguments>}"
)
FORMATS = {f.name: f for f in (HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS)}


def detect(template: str | None) -> ToolFormat:
    """The format a chat template teaches its model (``hermes`` when it names none)."""
    return FORMATS[tool_call_format(template)]


def _tagged_calls(text: str, opening: str, closing: str) -> tuple[list[dict[str, Any]], bool]:
    calls: list[dict[str, Any]] = []
    clean = True
    position = 0
    while True:
        start = text.find(opening, position)
        if start < 0:
            clean = clean and not text[position:].strip()
            return calls, clean
        clean = clean and not text[position:start].strip()
        end = text.find(closing, start + len(opening))
        if end < 0:
            return calls, False
        body = text[start + len(opening) : end].strip()
        call = _call(_loads(body), "arguments")
        if call is None:
            clean = False
        else:
            calls.append(call)
        position = end + len(closing)


def _json_values(text: str, key: str, array: bool) -> tuple[list[dict[str, Any]], bool]:
    """Calls written as JSON: one array of them, or objects one after another
    (separated by spaces, newlines, commas or semicolons)."""
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n;,":
            position += 1
        if position == len(text):
            return calls, bool(calls)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return calls, False
        items = value if array and isinstance(value, list) else [value]
        for item in items:
            call = _call(item, key)
            if call is None:
                return calls, False
            calls.append(call)


ARGS_CALL = re.compile(r"\s*([A-Za-z0-9_.$-]+)(?:\[CALL_ID\][A-Za-z0-9]+)?\[ARGS\]")


def _args_calls(text: str, opening: str) -> tuple[list[dict[str, Any]], bool]:
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    position = 0
    while text.startswith(opening, position):
        match = ARGS_CALL.match(text, position + len(opening))
        if match is None:
            return calls, False
        try:
            arguments, position = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            return calls, False
        calls.append({"name": match.group(1), "arguments": arguments})
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
    return calls, position == len(text) and bool(calls)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _call(value: Any, key: str) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get(key, value.get("arguments", value.get("parameters", {})))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        arguments = _loads(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        return None
    return {"name": value["name"], "arguments": arguments}


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


class CallSplitter:
    """One choice's text, split into content and calls while it streams."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.format = fmt
        # Llama writes a call as the whole reply, or after <|python_tag|>.
        self._opening = fmt.opening or PYTHON_TAG
        self._state = "start" if not fmt.opening else "text"
        self._held = ""  # text not yet sent: maybe the start of a call
        self._calls_text = ""  # from the opening on
        self._found = 0  # calls already reported
        self._clean = True

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """Content ready to send, and calls completed by ``text``."""
        if self._state == "calls":
            self._calls_text += text
            return "", self._new_calls(final=False)
        self._held += text
        if self._state == "start":
            stripped = self._held.lstrip()
            if not stripped or PYTHON_TAG.startswith(stripped):
                return "", []
            if stripped.startswith(("{", PYTHON_TAG)):
                return self._begin_calls(len(self._held) - len(stripped))
            self._state = "text"
        at = self._held.find(self._opening)
        if at >= 0:
            return self._begin_calls(at)
        keep = _held_suffix(self._held, self._opening)
        ready = self._held[: len(self._held) - keep]
        sendable = ready.rstrip()  # space before a call is not content
        self._held = self._held[len(sendable) :]
        return sendable, []

    def _begin_calls(self, at: int) -> tuple[str, list[dict[str, Any]]]:
        before, self._calls_text = self._held[:at], self._held[at:]
        self._held = before[len(before.rstrip()) :]
        self._state = "calls"
        return before.rstrip(), self._new_calls(final=False)

    def finish(self) -> tuple[str, list[dict[str, Any]], bool]:
        """Text still held, the last calls, and whether the calls parsed cleanly.

        Text that began like a call but held none is given back as content."""
        if self._state != "calls":
            held, self._held = self._held, ""
            return held, [], True
        calls = self._new_calls(final=True)
        if self._found == 0:
            return self.given_back(), [], False
        return "", calls, self._clean

    def given_back(self) -> str:
        """The text from the space before the calls on, as the model wrote it."""
        return self._held + self._calls_text if self._state == "calls" else ""

    def _new_calls(self, final: bool) -> list[dict[str, Any]]:
        calls, self._clean = self.format.complete_calls(self._calls_text)
        if not final and self.format.name in ("mistral", "llama3"):
            # One JSON value may still grow into more calls (an array, or
            # objects one after another): report them when the choice ends.
            return []
        new = calls[self._found :]
        self._found = len(calls)
        return new
