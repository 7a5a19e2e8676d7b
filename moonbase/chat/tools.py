"""Function tools on engines without native tool calling.

The tools are described to the model in a system block; a call is written the
way the model's family writes it (``tool_formats.py``: Hermes/Qwen
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, the generic
default; Llama 3.x JSON; Mistral ``[TOOL_CALLS]``), chosen from its chat
template. With
``tool_choice`` "required" (or a named function) the reply is generated under
a grammar that only admits calls whose arguments follow the tools' schemas, so
even a small model returns calls that parse and validate. With "auto" the
model decides whether to call; once it begins a call, a lazy grammar holds
the call to the same schemas (on engines that take one), and a call in its
text becomes a tool call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from moonbase.catalog import Family
from moonbase.chat.mfjs import SchemaError, validate_schema
from moonbase.chat.tool_formats import FORMATS, HERMES, CallSplitter, ToolFormat
from moonbase.engines.base import JsonConstraint
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import MAX_TOOLS, ChatCompletionRequest, Message, ToolDefinition

NAME_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9\-_]{2,63}$")
MAX_CALLS_PER_TURN = 3


@dataclass(frozen=True)
class ToolPlan:
    tools: list[ToolDefinition]  # what the model may call (one, under a named tool_choice)
    forced: bool  # "required" or a named function: the reply must be calls
    first_call_index: int  # ids continue the conversation's numbering
    # Where each tool was declared: None for the request's `tools`, else the
    # index of the system message that loaded it (it is offered from there on).
    declared_in: dict[str, int | None] = field(default_factory=dict)
    max_calls: int = MAX_CALLS_PER_TURN  # 1 with parallel_tool_calls false
    format: ToolFormat = HERMES  # how the model writes a call (its chat template's)

    @property
    def names(self) -> list[str]:
        return [tool.function.name for tool in self.tools]

    def declared_at(self, message_index: int | None) -> list[ToolDefinition]:
        """The offered tools that the request (None) or one system message declared."""
        return [t for t in self.tools if self.declared_in.get(t.function.name) == message_index]


def plan_tools(
    request: ChatCompletionRequest, family: Family | None = None, tool_format: str = "hermes"
) -> ToolPlan | None:
    """Validate tools and tool_choice; None when no tool may be called."""
    declared = declared_tools(request.tools, request.messages)
    choice = request.tool_choice
    if choice is not None and request.tools == []:
        raise BadRequestError(
            "tool_choice needs tools to choose from, and tools is empty: "
            "declare at least one tool or leave tool_choice out",
            param="tool_choice",
        )
    tools = [tool for tool, _ in declared]
    forced = choice == "required" or isinstance(choice, dict)
    if forced and not tools:
        raise BadRequestError(
            "tool_choice asks for a tool call, but the request declares no tools: "
            "add tools (or a system message's tools) or leave tool_choice out",
            param="tool_choice",
        )
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        if family is not None and not family.accepts_named_tool_choice:
            raise BadRequestError(
                f"{family.name} models take tool_choice auto, none or required only; "
                'to force one tool, send only that tool with tool_choice "required"',
                param="tool_choice",
            )
        name = (choice.get("function") or {}).get("name")
        tools = [tool for tool in tools if tool.function.name == name]
        if choice.get("type") != "function" or not tools:
            raise BadRequestError(
                "tool_choice must be auto, none, required or "
                '{"type": "function", "function": {"name": <one of the tools>}}',
                param="tool_choice",
            )
    callable_tools = [t for t in tools if t.type == "function"] or tools
    previous = sum(len(m.tool_calls or []) for m in request.messages)
    where = {tool.function.name: index for tool, index in declared}
    fmt = FORMATS.get(tool_format, HERMES)
    max_calls = 1 if request.parallel_tool_calls is False else fmt.max_calls
    return ToolPlan(callable_tools, forced, previous, where, max_calls, fmt)


def declared_tools(
    request_tools: list[ToolDefinition] | None, messages: list[Message]
) -> list[tuple[ToolDefinition, int | None]]:
    """Every tool of the request and of its system messages, each checked, with
    where it was declared; names are unique across the whole request."""
    found: list[tuple[str, ToolDefinition, int | None]] = [
        (f"tools[{i}]", tool, None) for i, tool in enumerate(request_tools or [])
    ]
    for index, message in enumerate(messages):
        if message.tools is None:
            continue
        if message.role != "system":
            raise BadRequestError(
                f"messages[{index}] is a {message.role} message: only system messages "
                "may declare tools",
                param=f"messages[{index}].tools",
            )
        found += [(f"messages[{index}].tools[{i}]", t, index) for i, t in enumerate(message.tools)]
    if len(found) > MAX_TOOLS:
        raise BadRequestError(
            f"a request may declare at most {MAX_TOOLS} tools, this one declares {len(found)}",
            param="tools",
        )
    seen: dict[str, str] = {}
    for where, tool, _ in found:
        _check_tool(where, tool)
        name = tool.function.name
        if name in seen:
            raise BadRequestError(
                f"tool name {name!r} is declared twice ({seen[name]} and {where}); "
                "tool names must be unique",
                param=f"{where}.function.name",
            )
        seen[name] = where
    return [(tool, index) for _, tool, index in found]


def _check_tool(where: str, tool: ToolDefinition) -> None:
    where = f"{where}.function"
    name = tool.function.name
    if tool.type == "builtin_function":
        if not name.startswith("$"):
            raise BadRequestError(
                "builtin_function names start with $ (e.g. $web_search)", param=f"{where}.name"
            )
        return
    if not NAME_PATTERN.match(name):
        raise BadRequestError(
            f"tool name {name!r} must match {NAME_PATTERN.pattern}", param=f"{where}.name"
        )
    parameters = tool.function.parameters
    if parameters is None:
        return
    if parameters.get("type") != "object":
        raise BadRequestError(
            "a tool's parameters must be a JSON schema of type object",
            param=f"{where}.parameters",
        )
    if tool.function.strict is not False:
        try:
            validate_schema(parameters)
        except SchemaError as exc:
            raise BadRequestError(
                f"{where}.parameters is not valid MFJS: {exc}", param=f"{where}.parameters"
            ) from exc


def offered_in_messages(messages: list[Message], tool_format: str = "hermes") -> ToolPlan | None:
    """The tools a conversation's system messages load, as a chat request with
    no ``tools`` of its own would offer them (what a token count must include)."""
    declared = declared_tools(None, messages)
    if not declared:
        return None
    tools = [tool for tool, _ in declared]
    where = {tool.function.name: index for tool, index in declared}
    fmt = FORMATS.get(tool_format, HERMES)
    return ToolPlan(tools, False, 0, where, fmt.max_calls, fmt)


def system_block(tools: list[ToolDefinition], fmt: ToolFormat = HERMES) -> str:
    lines = [
        "You can call these tools. To call one, reply with only:",
        fmt.example,
        "Tools:",
    ]
    for tool in tools:
        function = tool.function
        parameters = json.dumps(function.parameters or {"type": "object"}, ensure_ascii=False)
        lines.append(f"- {function.name}: {function.description or ''} Parameters: {parameters}")
    return "\n".join(lines)


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


def history_text(message: Message, text: str, fmt: ToolFormat = HERMES) -> str:
    """An assistant turn's text with its tool calls written the way the model writes them."""
    calls = [(c.function.name, _arguments(c.function.arguments)) for c in message.tool_calls or []]
    written = fmt.write_calls(calls) if calls else ""
    return f"{text}\n{written}" if text and written and not fmt.opening else text + written


def calls_constraint(plan: ToolPlan) -> JsonConstraint | None:
    """How the model's calls are held to the tools' schemas while it decodes.

    Forced ("required" or a named function): the whole reply is
    ``{"calls": [...]}``. Under "auto" the model writes what it likes; once it
    begins a call in its family's format (``<tool_call>``, Llama's ``{`` at the
    start of the reply, Mistral's ``[TOOL_CALLS]``), the call (the name one of
    the tools, the arguments following its schema) and up to two more are held
    to the grammar, and then the reply ends. Mistral's ``name[ARGS]{...}`` form
    is not JSON: its calls are parsed but not constrained (None)."""
    defs: dict[str, Any] = {}
    fmt = plan.format
    if not plan.forced:
        if fmt.name == "mistral-args":
            return None
        call = _one_call(plan, defs, fmt.arguments_key)
        if fmt.name == "mistral":  # one array of calls after [TOOL_CALLS]
            call = {"type": "array", "items": call, "minItems": 1, "maxItems": plan.max_calls}
        schema = {**call, "$defs": defs} if defs else call
        values = 1 if fmt.name == "mistral" else plan.max_calls
        return JsonConstraint(
            schema=schema, opening=fmt.opening, closing=fmt.closing, max_values=values
        )
    call = _one_call(plan, defs)
    calls: dict[str, Any] = {
        "type": "object",
        "properties": {
            "calls": {
                "type": "array",
                "items": call,
                "minItems": 1,
                "maxItems": plan.max_calls,
            }
        },
        "required": ["calls"],
    }
    if defs:
        calls["$defs"] = defs
    return JsonConstraint(schema=calls)


def _one_call(plan: ToolPlan, defs: dict[str, Any], key: str = "arguments") -> dict[str, Any]:
    """The schema of one call, ``{"name": ..., "arguments": ...}``, of any of the tools."""
    variants = []
    for tool in plan.tools:
        name = tool.function.name
        arguments = _hoist(name, tool.function.parameters or {"type": "object"}, defs)
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [name]}, key: arguments},
                "required": ["name", key],
            }
        )
    return {"anyOf": variants} if len(variants) > 1 else variants[0]


def _hoist(tool: str, parameters: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a tool's $defs to the combined root, renaming its references to match."""
    if "$defs" not in parameters and not _has_ref(parameters):
        return parameters
    prefix = f"{tool}__"
    body = {k: v for k, v in parameters.items() if k not in ("$defs", "$id")}
    defs[prefix + "root"] = _rewrite(body, prefix)
    for name, definition in (parameters.get("$defs") or {}).items():
        defs[prefix + name] = _rewrite(definition, prefix)
    return {"$ref": f"#/$defs/{prefix}root"}


def _has_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_ref(item) for item in node)
    return False


def _rewrite(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite(v, prefix) for k, v in node.items()}
    ref = node.get("$ref")
    if ref == "#":
        out["$ref"] = f"#/$defs/{prefix}root"
    elif isinstance(ref, str) and ref.startswith("#/$defs/"):
        out["$ref"] = "#/$defs/" + prefix + ref.removeprefix("#/$defs/")
    return out


@dataclass(frozen=True)
class ParsedReply:
    content: str | None
    calls: list[dict[str, Any]]  # OpenAI tool_calls objects


def _finished_calls(text: str) -> list[Any]:
    """The complete call objects at the start of an unfinished ``{"calls": [...`` reply."""
    start = text.find("[")
    if start < 0:
        return []
    decoder = json.JSONDecoder()
    calls: list[Any] = []
    position = start + 1
    while True:
        while position < len(text) and text[position] in " \t\n\r,":
            position += 1
        try:
            call, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return calls
        calls.append(call)


def parse_reply(text: str, plan: ToolPlan) -> ParsedReply:
    """Split a choice's whole text into content and tool calls."""
    if plan.forced:
        try:
            raw: list[Any] = json.loads(text).get("calls", [])
        except (json.JSONDecodeError, AttributeError):
            # Cut by max_tokens: keep the calls that were finished (a small
            # model may go on repeating calls until the budget runs out).
            raw = _finished_calls(text)
        calls = CallNumbering(plan).number(raw)
        return ParsedReply(None, calls) if calls else ParsedReply(text, [])
    stream = ReplyStream(plan)
    content, calls = stream.feed(text)
    more_content, more_calls = stream.finish()
    if not calls + more_calls:
        return ParsedReply(text, [])
    return ParsedReply((content + more_content) or None, calls + more_calls)


class CallNumbering:
    """Calls of one choice as OpenAI tool_calls objects: only the plan's tools,
    at most its ``max_calls``, ids numbered across the conversation."""

    def __init__(self, plan: ToolPlan) -> None:
        self._plan = plan
        self._count = 0

    def number(self, raw: list[Any]) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for call in raw:
            if self._count == self._plan.max_calls:  # free text past the grammar's bound
                break
            if not isinstance(call, dict) or call.get("name") not in self._plan.names:
                continue
            index = self._plan.first_call_index + self._count
            self._count += 1
            calls.append(
                {
                    "id": f"functions.{call['name']}:{index}",
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False),
                    },
                }
            )
        return calls

    @property
    def count(self) -> int:
        return self._count


class ReplyStream:
    """One choice under tool_choice "auto", as it streams: content that cannot
    begin a call at once, each call when it is complete."""

    def __init__(self, plan: ToolPlan) -> None:
        self._splitter = CallSplitter(plan.format)
        self._numbering = CallNumbering(plan)

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        content, raw = self._splitter.feed(text)
        return content, self._numbering.number(raw)

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        content, raw, _ = self._splitter.finish()
        calls = self._numbering.number(raw)
        if self._numbering.count == 0:  # nothing callable: the text is content
            content = content or self._splitter.given_back()
        return content, calls
