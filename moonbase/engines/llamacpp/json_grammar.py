"""JSON schema -> GBNF for the embedded engine, bounded so that a reply ends.

llama.cpp's grammar guarantees that every token keeps the output a valid
prefix; it cannot make a small model finish. SmolLM2-135M writes a string
until ``max_tokens`` runs out ("2018 2018 2018 ..."), and a cut reply is not
JSON. So the grammar here admits only bounded values: strings of at most
``max_string`` characters, at most ``max_items`` array items and free object
members, free-form values nested at most ``max_depth`` deep. Every output it
admits still validates against the schema (a bound never goes below a
schema's own minimum); it is a subset of the valid outputs, not a change of
meaning. The bounds are engine settings: raise them for a larger model.

Schemas are checked at the level Moonshot's server uses (chat/mfjs.py,
Level.STRICT), which lets through what a grammar cannot use; that is set
aside first (``for_generation``): annotations (``default``, ``examples``,
``format``, ``$schema``, ``title``...) are dropped, ``const`` becomes a
one-value ``enum``, keywords beside ``anyOf`` are folded into each branch
(a conjunction distributes over a disjunction, so the meaning is kept) and
keywords beside ``$ref`` are ignored for generation. The client's schema
itself is never changed: arguments are checked against it as sent.

Three faults of llama-cpp-python's converter are corrected on the way:
literals are not backslash-escaped for GBNF (a key like ``a\\n`` or an emoji
key came out wrong), ``enum`` is ignored when ``type`` is a list, and
``minimum``/``maximum`` are ignored (kimi-cli's ``timeout`` of 30..3600 came
back as 3000000000000000): bounded integers and numbers get a digit-range
rule here (a bounded number takes the integers in its range). And a
``pattern`` is checked before the converter reads it: it loops for ever on a
stray ``]`` or ``}``, and spells every ``{m,n}`` out, which llama.cpp's
parser recursed into until the process died (``_check_pattern``).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from llama_cpp.llama_grammar import INVALID_RULE_CHARS_RE, RESERVED_NAMES, SchemaConverter


class GrammarError(ValueError):
    """The schema cannot be turned into a grammar llama.cpp accepts."""


@dataclass(frozen=True)
class JsonBounds:
    max_string: int = 48
    max_items: int = 5
    max_depth: int = 2


_LOOSE_STRING_CHAR = r'char ::= [^"\\] |'
# JSON forbids raw control characters in strings; llama.cpp's own converter
# excludes them, llama-cpp-python's does not.
_JSON_STRING_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'
_LITERAL_ESCAPES = re.compile(r'[\r\n"\\]')
_ESCAPED = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}
_COMBINED = {"anyOf", "oneOf", "allOf", "$ref", "const", "enum"}
_SCALARS = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]


_PLAIN_CHAR = r'[^"\\\x7F\x00-\x1F'
_END = ""


class _Converter(SchemaConverter):
    def __init__(self, bounds: JsonBounds) -> None:
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._bounds = bounds
        self._declared: list[list[str]] = []  # property names of the objects being built
        self._repeats = 0  # spelled out by the patterns so far (MAX_PATTERN_REPEATS)

    def visit(self, schema: Any, name: str) -> str:
        ranged = _ranged_integers(schema) if isinstance(schema, dict) else None
        if ranged is not None:
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            return str(self._add_rule(rule_name, f"({ranged}) space"))
        return str(super().visit(schema, name))

    def _format_literal(self, literal: str) -> str:
        return '"' + _LITERAL_ESCAPES.sub(lambda m: _ESCAPED[m.group(0)], literal) + '"'

    def _resolve_ref(self, ref: str) -> str:
        # The converter names a rule from its $defs key as is; a recursive
        # reference then points at "linked_list_node" while the rule was
        # written as "linked-list-node" (GBNF names allow no "_").
        name = INVALID_RULE_CHARS_RE.sub("-", ref.split("/")[-1])
        if name not in self._rules and ref not in self._refs_being_resolved:
            self._refs_being_resolved.add(ref)
            name = self.visit(self._refs[ref], name)
            self._refs_being_resolved.remove(ref)
        return name

    def _build_object_rule(
        self, properties: Any, required: Any, name: str, additional_properties: Any
    ) -> Any:
        # The parameter keeps the converter's name: its allOf branch passes it by keyword.
        self._declared.append([prop for prop, _ in properties])
        try:
            return super()._build_object_rule(properties, required, name, additional_properties)
        finally:
            self._declared.pop()

    def _visit_pattern(self, pattern: Any, name: str) -> Any:
        self._repeats += _check_pattern(pattern)
        if self._repeats > MAX_PATTERN_REPEATS:
            raise GrammarError(
                f"the schema's patterns repeat more than {MAX_PATTERN_REPEATS} times in all "
                f"({pattern[:100]!r} goes past it): this engine cannot generate them"
            )
        return super()._visit_pattern(pattern, name)

    def _add_rule(self, name: str, rule: str) -> str:
        # A free member's key must not repeat a declared property: the JSON
        # would carry the key twice and the last value (of the wrong type) win.
        if name.endswith("additional-kv") and rule.startswith("string ") and self._declared:
            key = super()._add_rule(f"{name}-key", self._not_strings(self._declared[-1]))
            rule = key + rule[len("string") :]
        return str(super()._add_rule(name, rule))

    def _not_strings(self, words: list[str]) -> str:
        """A JSON string of plain characters (no escapes) that is none of ``words``."""
        trie: dict[str, Any] = {}
        for word in words:
            if _LITERAL_ESCAPES.search(word) or any(ord(c) < 0x20 or c == "\x7f" for c in word):
                continue  # needs escaping in JSON: a plain-character key cannot equal it
            node = trie
            for char in word:
                node = node.setdefault(char, {})
            node[_END] = {}
        tail = f"{_PLAIN_CHAR}]{{0,{self._bounds.max_string}}}"

        def branch(node: dict[str, Any]) -> str:
            children = [char for char in node if char != _END]
            options = [f"{self._format_literal(char)} {branch(node[char])}" for char in children]
            excluded = "".join(_class_escape(char) for char in children)
            options.append(f"{_PLAIN_CHAR}{excluded}] {tail}")
            body = "(" + " | ".join(options) + ")"
            return body if _END in node else body + "?"

        return f'"\\"" {branch(trie)} "\\"" space'


# Repetitions a schema's patterns may spell out, in all: the converter writes
# {m,n} as m copies and n - m nested options, and llama.cpp's grammar parser
# recurses into each (20,000 of them overflowed its stack: the process died).
MAX_PATTERN_REPEATS = 2000
_QUANTIFIER_PART = re.compile(r" *[0-9]{0,6} *")


def _check_pattern(pattern: Any) -> int:
    """How many repetitions ``pattern`` spells out; a GrammarError for one
    that llama-cpp-python's converter would never finish: it stops on a
    ``]`` or ``}`` outside a class or a quantifier without moving past it
    (one request spun a thread for ever). Read the way the converter reads
    it: classes to their first ``]``, quantifiers to their ``}``, split at
    commas (ASCII digits only: it would take "20_000" and "２００００" too)."""
    if not isinstance(pattern, str) or not (pattern.startswith("^") and pattern.endswith("$")):
        return 0  # the converter refuses it itself
    body, index, repeats = pattern[1:-1], 0, 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            index += 2
        elif char == "[":
            index += 1
            while index < len(body) and body[index] != "]":
                index += 2 if body[index] == "\\" else 1
            index += 1
        elif char == "{":
            end = body.find("}", index)
            if end < 0:
                return repeats  # the converter refuses an unclosed quantifier
            parts = body[index + 1 : end].split(",")
            if len(parts) > 2 or not all(_QUANTIFIER_PART.fullmatch(part) for part in parts):
                raise GrammarError(
                    f"pattern {pattern[:100]!r}: {body[index : end + 1][:40]!r} is not "
                    "a repetition of ASCII digits ({n}, {m,} or {m,n})"
                )
            numbers = [int(part) for part in parts if part.strip()]
            repeats += max(numbers, default=0) or 1
            index = end + 1
        elif char in "]}":
            raise GrammarError(
                f"pattern {pattern[:100]!r}: an unmatched {char!r} (escape it as \\{char})"
            )
        else:
            index += 1
    return repeats


def _ranged_integers(schema: dict[str, Any]) -> str | None:
    """GBNF for the integers within a numeric schema's minimum and maximum;
    None when the schema has no bounds (or, for a number, no integer fits)."""
    if schema.get("type") not in ("integer", "number") or _COMBINED & schema.keys():
        return None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if not (_is_number(minimum) or _is_number(maximum)):
        return None
    low = math.ceil(minimum) if _is_number(minimum) else None
    high = math.floor(maximum) if _is_number(maximum) else None
    if low is not None and high is not None and low > high:
        return None  # e.g. a number in [0.1, 0.9]: left to the model
    parts: list[str] = []
    if high is None or high >= 0:
        parts += _naturals(max(low, 0) if low is not None else 0, high)
    if low is None or low < 0:  # -k for k in [max(1, -high), -low]
        least = max(1, -high) if high is not None else 1
        most = -low if low is not None else None
        if most is None or least <= most:
            parts += [f'"-" {part}' for part in _naturals(least, most)]
    return " | ".join(f"({part})" for part in parts)


def _naturals(low: int, high: int | None) -> list[str]:
    """GBNF sequences that together match the decimal integers low..high
    (no leading zeros; high None: no upper bound)."""
    parts: list[str] = []
    longest = len(str(high if high is not None else low))
    for length in range(len(str(low)), longest + 1):
        start = low if length == len(str(low)) else 10 ** (length - 1)
        end = high if high is not None and length == longest else 10**length - 1
        if start <= end:
            parts += _digits_between(str(start), str(end))
    if high is None:  # every longer number
        parts.append(" ".join(["[1-9]", *["[0-9]"] * longest, "[0-9]*"]))
    return parts


def _digits_between(low: str, high: str) -> list[str]:
    """Sequences matching the digit strings from ``low`` to ``high`` (same length)."""
    if low == high:
        return [f'"{low}"']
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    rest = len(low) - 1
    if low == "0" * len(low) and high == "9" * len(high):
        return [" ".join(["[0-9]"] * len(low))]
    if low[0] == high[0]:
        return [f'"{low[0]}" {part}' for part in _digits_between(low[1:], high[1:])]
    parts = [f'"{low[0]}" {part}' for part in _digits_between(low[1:], "9" * rest)]
    if int(low[0]) + 1 <= int(high[0]) - 1:
        parts.append(" ".join([f"[{int(low[0]) + 1}-{int(high[0]) - 1}]", *["[0-9]"] * rest]))
    parts += [f'"{high[0]}" {part}' for part in _digits_between("0" * rest, high[1:])]
    return parts


def _class_escape(char: str) -> str:
    return f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}"


def json_grammar(schema: dict[str, Any] | None, bounds: JsonBounds | None = None) -> str:
    """GBNF for one JSON object (matching ``schema`` when given)."""
    bounds = bounds or JsonBounds()
    try:  # every step walks the schema recursively: a deep one is a GrammarError too
        root = _without_root_references(
            for_generation(schema) if schema is not None else {"type": "object"}
        )
        converter = _Converter(bounds)
        resolved = converter.resolve_refs(_bounded(root, bounds, bounds.max_depth), "schema")
        converter.visit(resolved, "")
        grammar = converter.format_grammar()
    except Exception as exc:  # the converter raises plain exceptions on schemas it lacks
        raise GrammarError(f"cannot turn this JSON schema into a grammar: {exc}") from exc
    return _cap_repetitions(grammar.replace(_LOOSE_STRING_CHAR, _JSON_STRING_CHAR), bounds)


# Keywords that describe a value without constraining it (or, as `format`,
# constrain it in a way MFJS does not promise): a grammar has no use for them.
_ANNOTATIONS = frozenset(
    {
        "default", "examples", "example", "format", "$schema", "$id", "$comment", "title",
        "description", "deprecated", "readOnly", "writeOnly", "contentMediaType",
        "contentEncoding",
    }
)  # fmt: skip
# Keywords whose value maps names to schemas (the names are not keywords) or
# holds data (never a schema, so never walked).
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_DATA = frozenset({"enum", "const", "required"})
_LOWER_BOUNDS = frozenset({"minimum", "minLength", "minItems"})
_UPPER_BOUNDS = frozenset({"maximum", "maxLength", "maxItems"})


def for_generation(schema: Any) -> Any:
    """A copy of ``schema`` with what a grammar cannot use set aside (see above)."""
    if isinstance(schema, list):
        return [for_generation(item) for item in schema]
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    node: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            node[key] = {name: for_generation(sub) for name, sub in value.items()}
        elif key in _DATA:
            node[key] = copy.deepcopy(value)
        else:
            node[key] = for_generation(value)
    if "const" in node:
        constant = node.pop("const")
        node["enum"] = [v for v in node.get("enum", [constant]) if v == constant] or [constant]
    definitions = {key: node.pop(key) for key in ("$defs", "definitions") if key in node}
    if "$ref" in node:
        return {"$ref": node["$ref"], **definitions}
    if isinstance(node.get("anyOf"), list) and len(node) > 1:
        siblings = {key: value for key, value in node.items() if key != "anyOf"}
        folded = [_conjunction(branch, siblings) for branch in node["anyOf"]]
        node = {"anyOf": [branch for branch in folded if branch is not None] or node["anyOf"]}
    return {**node, **definitions}


def _conjunction(branch: Any, siblings: dict[str, Any]) -> dict[str, Any] | None:
    """``branch`` and ``siblings`` both, as one schema; None if nothing fits both.

    Where one keyword cannot say both (two ``properties``, a ``$ref``), the
    branch's own stands and the sibling is ignored for generation."""
    if not isinstance(branch, dict) or "$ref" in branch or "anyOf" in branch:
        return branch if isinstance(branch, dict) else None
    merged = dict(branch)
    for key, value in siblings.items():
        if key not in merged:
            merged[key] = value
        elif key == "type":
            common = _common_types(merged["type"], value)
            if not common:
                return None
            merged["type"] = common[0] if len(common) == 1 else common
        elif key in _LOWER_BOUNDS | _UPPER_BOUNDS and _is_number(value):
            pick = max if key in _LOWER_BOUNDS else min
            merged[key] = pick(merged[key], value) if _is_number(merged[key]) else value
        elif key == "enum" and isinstance(value, list) and isinstance(merged[key], list):
            merged[key] = [item for item in merged[key] if item in value]
            if not merged[key]:
                return None
    return merged


def _common_types(one: Any, other: Any) -> list[str]:
    """Types both allow (an integer is a number)."""
    first = one if isinstance(one, list) else [one]
    second = other if isinstance(other, list) else [other]
    common: list[str] = []
    for kind in first:
        for also in second:
            meet = (
                kind
                if kind == also
                else "integer"
                if {kind, also} == {"integer", "number"}
                else None
            )
            if meet is not None and meet not in common:
                common.append(meet)
    return common


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SELF = "moonbase-root"


def _without_root_references(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"$ref": "#"}`` (the whole schema, recursively) as a reference into $defs,
    which the converter understands."""
    if not _refers_to_root(schema):
        return schema
    defs = dict(schema.get("$defs") or {})
    body = {key: value for key, value in schema.items() if key not in ("$defs", "$id")}
    defs[_SELF] = body
    # The root stays the body itself: the converter cannot start from a bare $ref.
    pointed = _point_root_at(body)
    return {**pointed, "$defs": {name: _point_root_at(sub) for name, sub in defs.items()}}


def _refers_to_root(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == "#" or any(_refers_to_root(value) for value in node.values())
    if isinstance(node, list):
        return any(_refers_to_root(item) for item in node)
    return False


def _point_root_at(node: Any) -> Any:
    if isinstance(node, list):
        return [_point_root_at(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _point_root_at(value) for key, value in node.items()}
    if out.get("$ref") == "#":
        out["$ref"] = f"#/$defs/{_SELF}"
    return out


def _any_value(depth: int) -> dict[str, Any]:
    """A free-form JSON value, nested at most ``depth`` levels."""
    if depth <= 0:
        return {"anyOf": copy.deepcopy(_SCALARS)}
    inner = _any_value(depth - 1)
    return {
        "anyOf": [
            *copy.deepcopy(_SCALARS),
            {"type": "array", "items": inner},
            {"type": "object", "additionalProperties": copy.deepcopy(inner)},
        ]
    }


def _bounded(node: Any, bounds: JsonBounds, depth: int) -> Any:
    """The schema with free-form parts made explicit, depth-bounded values."""
    if node is True or node == {}:
        return _any_value(depth)
    if not isinstance(node, dict):
        return node
    node = {key: value for key, value in node.items()}
    if "enum" in node and "type" in node:
        # Both apply; the converter would honour only the type list.
        types = node.pop("type")
        allowed = set(types) if isinstance(types, list) else {types}
        node["enum"] = [value for value in node["enum"] if _json_type(value) & allowed]
    types = node.get("type")
    if isinstance(types, list) and len(types) == 1:
        node["type"] = types = types[0]
    if isinstance(types, list) and not _COMBINED & node.keys():
        # llama-cpp-python's converter turns a type list into bare types and
        # drops every other keyword (bounds, items, properties): a free
        # ``object`` in the list would nest without limit. One branch per type
        # keeps them.
        # Definitions stay on the outer node, where references look for them.
        outer = {key: node.pop(key) for key in ("$defs", "definitions") if key in node}
        rest = {key: value for key, value in node.items() if key != "type"}
        outer["anyOf"] = [{**rest, "type": kind} for kind in types]
        return _bounded(outer, bounds, depth)
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            node[key] = {name: _bounded(sub, bounds, depth) for name, sub in node[key].items()}
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            node[key] = [_bounded(sub, bounds, depth) for sub in node[key]]
    types = node.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    _cap(node, "minLength", "maxLength", bounds.max_string)
    _cap(node, "minItems", "maxItems", bounds.max_items + 1)
    if "items" in node:
        node["items"] = _bounded(node["items"], bounds, depth - 1)
    elif "array" in kinds:
        node["items"] = _any_value(depth - 1)
    extra = node.get("additionalProperties")
    if extra is True or isinstance(extra, dict):
        node["additionalProperties"] = _bounded(extra, bounds, depth - 1)
    elif "object" in kinds and extra is None and "properties" not in node:
        node["additionalProperties"] = _any_value(depth - 1)
    return node


# The converter writes a bound of n as n nested optionals: far beyond this a
# grammar is too large to build (maxLength 5000000 in the vectors).
MAX_MINIMUM = 4096


def _cap(node: dict[str, Any], low: str, high: str, bound: int) -> None:
    """Lower a schema's maximum to ``bound``, never below its own minimum."""
    minimum = node.get(low, 0)
    if isinstance(minimum, int) and minimum > MAX_MINIMUM:
        raise GrammarError(f"{low} {minimum} is more than this engine can generate")
    maximum = node.get(high)
    if maximum is None or (isinstance(maximum, int) and maximum > bound):
        if high in node or low in node:
            node[high] = max(bound, minimum if isinstance(minimum, int) else 0)


def _json_type(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


def _cap_repetitions(grammar: str, bounds: JsonBounds) -> str:
    """Replace unbounded ``*`` and ``+`` with ``{0,n}`` and ``{1,n}``.

    Strings (``char*``) get ``max_string``, everything else (array items,
    object members, regex repetitions) ``max_items``. Quoted literals and
    character classes are copied untouched.
    """
    out: list[str] = []
    index = 0
    while index < len(grammar):
        char = grammar[index]
        if char in '"[':
            end = _skip_quoted(grammar, index, '"' if char == '"' else "]")
            out.append(grammar[index:end])
            index = end
            continue
        if char in "*+":
            limit = bounds.max_string if grammar[index - 4 : index] == "char" else bounds.max_items
            out.append(f"{{{0 if char == '*' else 1},{limit}}}")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _skip_quoted(text: str, start: int, closing: str) -> int:
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == closing:
            return index + 1
        index += 1
    return index
