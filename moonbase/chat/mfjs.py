"""Moonshot Flavored JSON Schema (MFJS): the schema subset Moonshot's API accepts.

MFJS is what ``response_format.json_schema.schema`` and tool ``parameters`` may
use. The rules carry over those of Moonshot's reference validator (walle):
seven types, ``type`` as a string or a list, keywords only where they fit the
type, ``$ref`` only to ``#`` or ``#/$defs/...``, bounded nesting, and no
recursion that could never end.

walle has levels (tests/data/mfjs/LEVELS.md). ``STRICT`` is what Moonshot's
server requires, and what requests are checked at: it lets through keywords
it does not know (``format``, ``examples``, ``$schema``...), anything beside
``anyOf``/``$ref`` (pydantic's ``{"anyOf": [...], "default": null}``),
duplicate ``type``/``required`` entries, ``required`` without an object type,
and ``$defs``/``$id`` below the root. ``TEST`` is the level the conformance
vectors were written for, and refuses all of those. What STRICT lets through
but a grammar cannot use is set aside by the embedded engine
(``engines/llamacpp/json_grammar.for_generation``), never here: the schema
stays as the client sent it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, cast


class Level(Enum):
    STRICT = "strict"  # Moonshot's server: what requests are validated at
    TEST = "test"  # walle's conformance vectors (its ultra checks included)


# The reference runs its conformance suite with a depth limit of 5 (its server
# default is 10); the vectors refuse schemas nested 7 deep, so 5 it is.
MAX_DEPTH = 5
MAX_ENUM_ITEMS = 1000
# Subschemas inside subschemas (anyOf in anyOf...), whatever the keyword: real
# schemas stay far below; the code that walks a schema (tool plans, grammars)
# is recursive, and Python's stack is not a limit a client should find.
MAX_NESTING = 64

TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
_ANNOTATIONS = frozenset({"description", "title"})
_ROOT_ONLY = frozenset({"$defs", "$id"})
_ANY_TYPE = _ANNOTATIONS | {"type", "default"}
_KEYWORDS_BY_TYPE: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "object": _ANY_TYPE | {"properties", "required", "additionalProperties"},
        "array": _ANY_TYPE | {"items", "minItems", "maxItems"},
        # The reference tolerates `pattern` on strings (accepted, not enforced) and
        # the vectors accept it, though the MFJS docs call it unsupported.
        "string": _ANY_TYPE | {"enum", "minLength", "maxLength", "pattern"},
        "number": _ANY_TYPE | {"enum", "minimum", "maximum"},
        "integer": _ANY_TYPE | {"enum", "minimum", "maximum"},
        "boolean": _ANY_TYPE | {"enum"},
        "null": _ANY_TYPE | {"enum"},
    }
)
_SUPPORTED = frozenset().union(*_KEYWORDS_BY_TYPE.values()) | _ROOT_ONLY | {"anyOf", "$ref"}
# Property names that read like keywords; the reference refuses them outright.
_RESERVED_NAMES = frozenset({"$defs", "$ref", "anyOf", "required", "additionalProperties"})
_BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum"))


def _is_number(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    return _is_number(value) and (isinstance(value, int) or cast(float, value).is_integer())


def _list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _is_schema_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(name, str) and isinstance(sub, dict) for name, sub in value.items()
    )


# What the value of each keyword must be: how an error says it, and the test.
_VALUE_RULES: Mapping[str, tuple[str, Callable[[Any], bool]]] = MappingProxyType(
    {
        "properties": ("an object mapping names to schemas", _is_schema_map),
        "$defs": ("an object mapping names to schemas", _is_schema_map),
        "additionalProperties": ("a boolean or an object", lambda v: isinstance(v, bool | dict)),
        "items": ("an object: one schema for every element", lambda v: isinstance(v, dict)),
        "anyOf": ("a non-empty array of schemas", lambda v: _list_of(v, dict) and bool(v)),
        "required": ("an array of non-empty property names", lambda v: _list_of(v, str) and all(v)),
        "enum": (
            f"a non-empty array of at most {MAX_ENUM_ITEMS} values",
            lambda v: isinstance(v, list) and 0 < len(v) <= MAX_ENUM_ITEMS,
        ),
        **dict.fromkeys(
            ("description", "title", "$id", "pattern", "$ref"),
            ("a string", lambda v: isinstance(v, str)),
        ),
        **dict.fromkeys(
            ("minLength", "maxLength", "minItems", "maxItems"),
            ("a non-negative integer", lambda v: _is_whole(v) and v >= 0),
        ),
        **dict.fromkeys(("minimum", "maximum"), ("a number", _is_number)),
    }
)


# The server takes empty names in `required` (only TEST refuses them).
_SERVER_VALUE_RULES: Mapping[str, tuple[str, Callable[[Any], bool]]] = MappingProxyType(
    {**_VALUE_RULES, "required": ("an array of property names", lambda v: _list_of(v, str))}
)


class SchemaError(ValueError):
    """A schema outside MFJS: names the offending keyword and where it is."""

    def __init__(self, message: str, *, keyword: str | None, path: str) -> None:
        where = f"{keyword!r} at {path}" if keyword else path
        super().__init__(f"{where}: {message}")
        self.keyword = keyword
        self.path = path


def parse_and_validate(text: str, level: Level = Level.STRICT) -> dict[str, Any]:
    """json.loads the text, then validate_schema; return the schema."""
    try:
        schema = json.loads(text, parse_constant=_finite_float, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise _err("#", None, f"the schema is not valid JSON ({exc}); send a JSON object") from exc
    validate_schema(schema, level)
    return cast(dict[str, Any], schema)


def validate_schema(schema: object, level: Level = Level.STRICT) -> None:
    """Raise SchemaError unless `schema` (already-parsed JSON) is valid MFJS at `level`."""
    if not isinstance(schema, dict):
        raise _err("#", None, f"the schema must be a JSON object, not {_show(schema)}")
    try:
        _Run(schema, level is Level.TEST).validate()
    except RecursionError as exc:  # a pathological document must not become a server error
        raise _err("#", None, "the schema is nested too deeply") from exc


class _Run:
    """One validation: the root, which `$ref` resolves against, and the references met."""

    def __init__(self, root: dict[str, Any], pedantic: bool) -> None:
        self.root = root
        self.pedantic = pedantic  # Level.TEST: walle's checks beyond the server's
        self.targets: dict[str, dict[str, Any]] = {}
        self.ref_sites: list[tuple[str, str]] = []
        self.checked: set[int] = set()
        self.ref_depths: dict[str, int] = {}

    def validate(self) -> None:
        self.check(self.root, "#")
        for path, ref in self.ref_sites:
            if id(self.targets[ref]) not in self.checked:  # e.g. into a `default` value
                raise _err(path, "$ref", f"{ref} does not point at a schema")
        self.check_depth()
        self.check_termination()

    def check(self, node: dict[str, Any], path: str, level: int = 0) -> None:
        if level > MAX_NESTING:
            raise _err(
                path,
                None,
                f"the schema nests subschemas more than {MAX_NESTING} levels deep; flatten it",
            )
        self.checked.add(id(node))
        at_root, pedantic = path == "#", self.pedantic
        if pedantic:
            _check_keywords(node, path, at_root)
        types = _check_type(node, path, pedantic)
        _check_fit(node, path, types, at_root or not pedantic, pedantic)
        rules = _VALUE_RULES if pedantic else _SERVER_VALUE_RULES
        for keyword in sorted(rules.keys() & node.keys()):
            said, test = rules[keyword]
            if not test(node[keyword]):
                raise _err(path, keyword, f"{keyword} must be {said}")
        _check_bounds(node, path, types)
        _check_enum(node, path, types)
        _check_names(node, path, pedantic)
        _check_required(node, path, types, pedantic)
        if "$ref" in node:
            self.targets[node["$ref"]] = self.resolve(node["$ref"], path)
            self.ref_sites.append((path, node["$ref"]))
        for child_path, child, _ in _subschemas(node, path):
            self.check(child, child_path, level + 1)

    def resolve(self, ref: str, path: str) -> dict[str, Any]:
        if ref == "#":
            return self.root
        if not ref.startswith("#/$defs/") or ref == "#/$defs/":
            raise _err(path, "$ref", f"references must start with #/$defs/ (or be #): {ref!r}")
        if "$defs" not in self.root:
            raise _err(path, "$ref", f"$defs not found for reference {ref}; add the root $defs")
        target: object = self.root
        for part in ref[2:].split("/"):  # unambiguous: names in $defs cannot contain '/'
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise _err(path, "$ref", f"invalid $ref path: nothing at {ref}")
        return target

    def check_depth(self) -> None:
        defs = [(f"#/$defs/{name}", sub) for name, sub in self.root.get("$defs", {}).items()]
        for path, node in [("#", self.root), *defs]:  # definitions count on their own too
            depth = self.depth(node, {path})  # as a `$ref` names it: "#" or "#/$defs/<name>"
            if depth > MAX_DEPTH:
                raise _err(
                    path,
                    "properties",
                    f"schema depth exceeds maximum limit: properties nest {depth} deep "
                    f"(following $ref) where at most {MAX_DEPTH} may; flatten the schema",
                )

    def depth(self, node: dict[str, Any], active: set[str]) -> int:
        """How many `properties` levels nest below `node`, following `$ref`.

        A reference back into one still being measured adds nothing: recursive
        schemas would otherwise be infinitely deep (whether they can end at all
        is check_termination's business).
        """
        deepest = 0
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in active:
            if ref not in self.ref_depths:
                active.add(ref)
                self.ref_depths[ref] = self.depth(self.targets[ref], active)
                active.discard(ref)
            deepest = self.ref_depths[ref]
        for _, child, keyword in _subschemas(node, ""):
            if keyword != "$defs":
                deepest = max(deepest, (keyword == "properties") + self.depth(child, active))
        return deepest

    def check_termination(self) -> None:
        # Least fixpoint: a reference can end once its target can, given what is
        # known to end so far; start from "none can" and grow until stable.
        known = dict.fromkeys(self.targets, False)
        grew = True
        while grew:
            grew = False
            for ref, target in self.targets.items():
                if not known[ref] and _finite(target, known):
                    known[ref] = grew = True
        if _finite(self.root, known):
            return
        loops = [s for s in self.ref_sites if not known[s[1]] and not s[0].startswith("#/$defs")]
        path, ref = loops[0] if loops else ("#", "#")
        raise _err(
            path,
            "$ref",
            f"detected infinite recursion without termination condition through {ref}: every "
            "step of the loop is required, so no finite value fits; make a property in the loop "
            'optional or give it an anyOf branch that ends it, such as {"type": "null"}',
        )


def _finite(node: dict[str, Any], known: Mapping[str, bool]) -> bool:
    """Whether some finite value fits `node`, given which references can end.

    As in the reference, an array can end only if its items can (minItems
    aside), and an object can if any one of its required properties can.
    """
    if isinstance(node.get("$ref"), str):
        return known[node["$ref"]]
    if "anyOf" in node:
        return any(_finite(branch, known) for branch in node["anyOf"])
    types = node.get("type", [])
    for name in [types] if isinstance(types, str) else types:
        if name == "array" and node.get("items"):
            ends = _finite(node["items"], known)
        elif name == "object" and node.get("required"):
            ends = any(_finite(node["properties"][p], known) for p in node["required"])
        else:
            ends = True
        if ends:
            return True
    return not types


def _subschemas(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(path, subschema, keyword holding it) for each subschema directly in `node`."""
    for keyword in ("$defs", "properties"):
        for name, child in node.get(keyword, {}).items():
            yield _join(path, keyword, name), child, keyword
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            yield _join(path, keyword), node[keyword], keyword
    for index, branch in enumerate(node.get("anyOf", [])):
        yield _join(path, "anyOf", str(index)), branch, "anyOf"


def _check_keywords(node: dict[str, Any], path: str, at_root: bool) -> None:
    unknown = sorted(str(key) for key in node if key not in _SUPPORTED)
    if unknown:
        raise _err(path, unknown[0], f"unsupported keywords: {', '.join(unknown)}; remove them")
    misplaced = sorted(_ROOT_ONLY & node.keys()) if not at_root else []
    if misplaced:
        raise _err(path, misplaced[0], f"keyword {misplaced[0]} must be at root level; move it")


def _check_type(node: dict[str, Any], path: str, pedantic: bool) -> list[str] | None:
    if "type" not in node:
        return None
    names = [node["type"]] if isinstance(node["type"], str) else node["type"]
    if not isinstance(names, list):
        raise _err(path, "type", "type must be string or array of strings")
    if not names:
        raise _err(path, "type", "type array cannot be empty; name at least one type")
    for name in names:
        if not isinstance(name, str) or name not in TYPES:
            raise _err(path, "type", f"invalid type {_show(name)}; use one of {sorted(TYPES)}")
    if pedantic and len(set(names)) < len(names):
        raise _err(path, "type", "duplicate types in type array; list each type once")
    return list(dict.fromkeys(names))


def _check_fit(
    node: dict[str, Any], path: str, types: list[str] | None, root_keys_ok: bool, pedantic: bool
) -> None:
    """Refuse keywords that do not belong beside the node's type, anyOf or $ref.

    Below TEST, anything may stand beside anyOf/$ref, and keywords MFJS does
    not know are not judged (generation_schema sets both aside)."""
    anchor = next((keyword for keyword in ("anyOf", "$ref") if keyword in node), None)
    if anchor and not pedantic:
        return
    home = "anyOf items" if anchor == "anyOf" else "the referenced schema"
    if anchor and types:
        raise _err(path, "type", f"when using {anchor}, type should be defined in {home}")
    if anchor:  # anyOf and $ref stand for the whole schema: anything beside them is lost
        allowed = _ANNOTATIONS | {anchor}
        where = f"at the same level as {anchor}; move them into {home}"
    elif types:
        allowed = frozenset.intersection(*(_KEYWORDS_BY_TYPE[name] for name in types))
        if len(types) > 1:  # a type list takes annotations only, or an enum for "X or null"
            common = _ANNOTATIONS if pedantic else _ANNOTATIONS | {"default"}
            allowed &= common | ({"type", "enum"} if len(types) == 2 else {"type"})
        where = f"in combination with type {_show(node['type'])}; remove them or change it"
    else:
        return
    judged = set(node) if pedantic else set(node) & _SUPPORTED
    wrong = sorted(judged - allowed - (_ROOT_ONLY if root_keys_ok else set()))
    if wrong:
        raise _err(path, wrong[0], f"invalid keywords: {', '.join(wrong)} not allowed {where}")


def _check_bounds(node: dict[str, Any], path: str, types: list[str] | None) -> None:
    for key in ("minimum", "maximum"):
        if key in node and "integer" in (types or []) and not _is_whole(node[key]):
            raise _err(path, key, f"{key} {node[key]} is not a valid integer")
    for low, high in _BOUNDS:
        if node.get(low, -math.inf) > node.get(high, math.inf):
            raise _err(path, low, f"{low} cannot be greater than {high}")


def _check_enum(node: dict[str, Any], path: str, types: list[str] | None) -> None:
    if "enum" not in node:
        return
    if types is None:
        raise _err(path, "enum", 'enum needs a type beside it, such as "type": "string"')
    if len(types) == 2 and "null" not in types:
        raise _err(path, "enum", 'with enum, a type list must be ["<type>", "null"]')
    for value in node["enum"]:
        if not any(_fits(value, name) for name in types):
            raise _err(path, "enum", f"enum value {_show(value)} is not of type {_show(types)}")


def _check_names(node: dict[str, Any], path: str, pedantic: bool) -> None:
    for name in node.get("properties", {}):
        if not name and pedantic:
            raise _err(path, "properties", "property name cannot be empty")
        if name in _RESERVED_NAMES:
            raise _err(path, "properties", f"property name {name!r} is reserved for JSON Schema")
        if "/" in name and path.startswith("#/$defs/"):  # a $ref could not reach it
            raise _err(path, "properties", f"names in $defs cannot contain '/' character: {name}")
    for name in node.get("$defs", {}):
        if not name or "/" in name:  # `$ref` paths are split on '/'
            raise _err(path, "$defs", "$defs names cannot be empty or contain '/' character")


def _check_required(
    node: dict[str, Any], path: str, types: list[str] | None, pedantic: bool
) -> None:
    required = node.get("required", [])
    if not required:  # an empty list asks for nothing, so it fits anywhere
        return
    if pedantic and len(set(required)) < len(required):
        raise _err(path, "required", "duplicate items in required array")
    if types != ["object"]:
        if not pedantic:  # the server ignores it: only an object has properties
            return
        raise _err(path, "required", 'required keyword must be used with "type": "object"')
    if "properties" not in node:
        raise _err(path, "required", "'properties' keyword is missing; describe them there")
    for name in required:
        if name not in node["properties"]:
            raise _err(path, "required", f"required property {name!r} is not defined in properties")


def _err(path: str, keyword: str | None, message: str) -> SchemaError:
    return SchemaError(message, keyword=keyword, path=path)


def _fits(value: object, type_name: str) -> bool:
    if type_name in ("number", "integer"):
        return _is_whole(value) if type_name == "integer" else _is_number(value)
    kinds: dict[str, type] = {"string": str, "boolean": bool, "null": type(None)}
    return isinstance(value, kinds[type_name])


def _join(path: str, *parts: str) -> str:
    # JSON Pointer escaping, so that a property named "a/b" stays one step
    return "/".join([path, *(part.replace("~", "~0").replace("/", "~1") for part in parts)])


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite_float(text: str) -> float:
    value = float(text)  # also sees NaN and Infinity, which Python would accept
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value
