"""The grammar a constrained sequence samples under: whole, or lazy.

A whole grammar (JSON mode, a schema, forced tool calls) holds from the first
token. A lazy one (tool calls under ``tool_choice: "auto"``) lets the model
write freely until it begins a tagged value, say ``<tool_call>``; from there
llama.cpp's lazy grammar sampler (``llama_sampler_init_grammar_lazy_patterns``)
holds the rest of the call to the declared tools and their schemas, and after
the last closing tag only the end of the output may follow.

The trigger is a regex that llama.cpp searches in the text generated so far;
once it matches, the text from the match on is replayed into the grammar, and
a replayed character the grammar refuses is a C++ exception that ends the
process. So the trigger matches only text that the grammar accepts: the
opening tag less its last character (byte-level BPE tokenizers split a tag
like ``<tool_call>`` before its ``>``, so the grammar is in force before the
tag is complete), or the whole tag followed by nothing but a prefix that every
value admits (a space or newline, then the ``{`` that opens the object). A
token that runs past that prefix never triggers, and its text stays text.

Llama 3.x writes a call as a bare JSON object, the whole reply (perhaps after
``<|python_tag|>``): its constraint has no opening, and the trigger matches
only a reply that so far is that object's beginning, ``{"name"`` or less.
Mistral's value after ``[TOOL_CALLS]`` is an array, so its prefix is ``[``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moonbase.engines.base import JsonConstraint
from moonbase.engines.llamacpp.json_grammar import JsonBounds, json_grammar


@dataclass(frozen=True)
class Grammar:
    gbnf: str
    root: str = "root"
    triggers: tuple[str, ...] = ()  # regexes; none: the grammar holds from the start


def grammar_for(constraint: JsonConstraint, bounds: JsonBounds) -> Grammar:
    """GBNF (and triggers) for ``constraint``; GrammarError if the schema has none."""
    gbnf = json_grammar(constraint.schema, bounds)
    if constraint.opening is None:
        return Grammar(gbnf)
    array = (constraint.schema or {}).get("type") == "array"
    return _tagged(
        gbnf, constraint.opening, constraint.closing, constraint.max_values, "[" if array else "{"
    )


# Llama 3.x: the reply so far is the start of {"name": (after <|python_tag|>, maybe);
# single spaces only, as the JSON grammar's own whitespace rule admits.
START_TRIGGER = r'^\s*(?:<\|python_tag\|>)?(\{)( ?("(n(a(m(e(" ?(: ?)?)?)?)?)?)?)?)?$'


def _tagged(gbnf: str, opening: str, closing: str, max_values: int, start: str) -> Grammar:
    """``opening JSON closing``, 1 to ``max_values`` times, around the JSON grammar's root."""
    if opening and len(opening) < 2:
        raise ValueError("a lazy grammar's opening tag needs at least two characters")
    taken = {line.split(" ::=", 1)[0] for line in gbnf.splitlines() if " ::=" in line}
    root, value = _free("tagged", taken), _free("tagged-value", taken)
    separator = "[ \\n]?"
    parts = [_literal(opening)] if opening else []
    parts += [separator, "root", separator] + ([_literal(closing)] if closing else [])
    rules = [
        f"{root} ::= {value} ({separator} {value}){{0,{max_values - 1}}}",
        f"{value} ::= {' '.join(parts)}",
    ]
    if not opening:
        return Grammar(gbnf + "\n" + "\n".join(rules) + "\n", root, (START_TRIGGER,))
    head, last = re.escape(opening[:-1]), re.escape(opening[-1])
    trigger = f"({head})({last}([ \\n]?{re.escape(start)})?)?$"
    return Grammar(gbnf + "\n" + "\n".join(rules) + "\n", root, (trigger,))


def _free(name: str, taken: set[str]) -> str:
    """``name``, or a variant of it that the JSON grammar does not already use."""
    while name in taken:
        name += "-x"
    return name


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
