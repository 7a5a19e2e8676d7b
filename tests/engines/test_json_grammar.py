import json
import re
import threading

import llama_cpp
import pytest
from llama_cpp import _internals

from moonbase.engines.llamacpp.grammar import Grammar
from moonbase.engines.llamacpp.json_grammar import (
    MAX_MINIMUM,
    GrammarError,
    JsonBounds,
    for_generation,
    json_grammar,
)
from moonbase.engines.llamacpp.model_file import default_model_path
from moonbase.engines.llamacpp.sampler import compile_grammar
from tests.datafiles import kimi_cli_tools, mcp_filesystem_tools, valid_mfjs_schemas


def valid_vector_schemas() -> list[dict]:
    return valid_mfjs_schemas()


@pytest.fixture(scope="module")
def vocab():
    model = _internals.LlamaModel(
        path_model=str(default_model_path()),
        params=llama_cpp.llama_model_default_params(),
        verbose=False,
    )
    yield model.vocab
    model.close()


def rule(grammar: str, name: str) -> str:
    return next(line for line in grammar.splitlines() if line.startswith(f"{name} ::="))


def test_strings_exclude_raw_control_characters():
    grammar = json_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
    assert r"\x00-\x1F" in rule(grammar, "char")


def test_json_object_mode_has_an_object_root():
    assert '"{"' in rule(json_grammar(None), "root")


def test_unconvertible_schemas_are_a_grammar_error():
    with pytest.raises(GrammarError):
        json_grammar({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_every_repetition_is_bounded():
    grammar = json_grammar(
        {
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "any": {}},
            "additionalProperties": True,
        },
        JsonBounds(max_string=7, max_items=3, max_depth=1),
    )
    without_literals = re.sub(r'"(\\.|[^"\\])*"|\[(\\.|[^\]\\])*\]', "", grammar)
    assert "*" not in without_literals and "+" not in without_literals
    assert "char{0,7}" in grammar and "{0,3}" in grammar


def test_keys_with_escapes_and_emoji_are_literal_json():
    grammar = json_grammar(
        {"type": "object", "properties": {"a\\n": {"type": "null"}, "😊": {"type": "null"}}}
    )
    assert r'"\"a\\\\n\""' in grammar  # JSON text "a\\n": a backslash, then n
    assert r'"\"\\ud83d\\ude0a\""' in grammar  # a JSON surrogate-pair escape, not two UTF-8 halves


def test_enum_wins_over_a_type_list():
    grammar = json_grammar(
        {"type": "object", "properties": {"x": {"enum": [True], "type": ["boolean", "null"]}}}
    )
    assert rule(grammar, "x") == 'x ::= "true"'


def test_a_free_object_in_a_type_list_is_depth_bounded():
    # llama-cpp-python's converter reduces a type list to bare types, which made
    # this "object" the unbounded recursive JSON value: SmolLM2 nested it until
    # max_tokens ran out (a CI failure of the structured-output e2e test).
    grammar = json_grammar(
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": ["string", "object"]}}},
        }
    )
    assert not any(line.startswith("value ::=") for line in grammar.splitlines())
    free_member = rule(grammar, "items-item-1-additional-value")
    assert "object" not in free_member and "array" not in free_member


def test_free_members_cannot_repeat_a_declared_key():
    grammar = json_grammar(
        {
            "type": "object",
            "properties": {"x": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        }
    )
    key = rule(grammar, "additional-kv-key")
    assert '"x" ([^' in key  # "x" must be followed by more characters
    assert r"\u0078]" in key  # and no other first character is x


def test_every_valid_vector_compiles_in_llama_cpp(vocab):
    schemas = valid_vector_schemas()
    assert len(schemas) > 200
    failures = []
    for schema in schemas:
        if schema.get("minLength", 0) > MAX_MINIMUM:  # 999999999999 characters: refused, below
            continue
        try:
            llama_cpp.llama_sampler_free(compile_grammar(vocab, Grammar(json_grammar(schema))))
        except GrammarError as error:
            failures.append(f"{json.dumps(schema)[:120]}: {error}")
    assert not failures, "\n".join(failures)


def test_a_minimum_no_reply_could_reach_is_a_grammar_error():
    with pytest.raises(GrammarError, match="minLength 999999999999"):
        json_grammar({"type": "string", "minLength": 999999999999})


def test_recursive_references_compile(vocab):
    for schema in (
        {"type": "object", "properties": {"child": {"$ref": "#"}, "name": {"type": "string"}}},
        {
            "$defs": {
                "linked_list_node": {
                    "type": "object",
                    "properties": {
                        "next": {"anyOf": [{"$ref": "#/$defs/linked_list_node"}, {"type": "null"}]}
                    },
                }
            },
            "type": "object",
            "properties": {"head": {"$ref": "#/$defs/linked_list_node"}},
        },
    ):
        llama_cpp.llama_sampler_free(compile_grammar(vocab, Grammar(json_grammar(schema))))


def test_annotations_are_dropped_for_generation_but_property_names_are_not():
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Params",
        "type": "object",
        "properties": {
            "title": {"type": "string", "title": "Title", "examples": ["x"]},
            "default": {"type": "string", "format": "uri", "default": "y"},
        },
    }
    assert for_generation(schema) == {
        "type": "object",
        "properties": {"title": {"type": "string"}, "default": {"type": "string"}},
    }


def test_const_becomes_a_one_value_enum():
    assert for_generation({"const": "x", "type": "string"}) == {"enum": ["x"], "type": "string"}


def test_keywords_beside_anyof_are_folded_into_each_branch():
    folded = for_generation(
        {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "maxLength": 5}
    )
    assert folded == {
        "anyOf": [{"type": "string", "maxLength": 5}, {"type": "null", "maxLength": 5}]
    }
    # a conjunction: bounds tighten, types intersect, a branch nothing fits goes
    assert for_generation(
        {"anyOf": [{"type": "string", "maxLength": 9}, {"type": "number"}], "maxLength": 5}
    )["anyOf"][0] == {"type": "string", "maxLength": 5}
    assert for_generation(
        {"anyOf": [{"type": "string"}, {"type": "number"}], "type": "integer"}
    ) == {"anyOf": [{"type": "integer"}]}


def test_keywords_beside_ref_are_ignored_for_generation():
    assert for_generation({"$ref": "#/$defs/Unit", "default": "c", "minLength": 1}) == {
        "$ref": "#/$defs/Unit"
    }


@pytest.mark.parametrize(
    "tools",
    [kimi_cli_tools, mcp_filesystem_tools],
    ids=["kimi-cli-1.52", "mcp-filesystem"],
)
def test_recorded_client_tool_schemas_compile_in_llama_cpp(vocab, tools):
    for tool in tools():
        grammar = json_grammar(tool["function"]["parameters"])
        llama_cpp.llama_sampler_free(compile_grammar(vocab, Grammar(grammar)))


def _as_regex(rule_body: str) -> re.Pattern[str]:
    """A digit-range rule body as a Python regex (its literals are digits and '-')."""
    return re.compile("^(?:" + rule_body.replace('"', "").replace(" ", "") + ")$")


@pytest.mark.parametrize(
    ("low", "high"),
    [(30, 3600), (0, 10), (1, 14), (-5, 5), (-3600, -30), (1, 1), (99, 1000), (123, 98765)],
)
def test_integer_bounds_become_exact_digit_ranges(low: int, high: int):
    grammar = json_grammar(
        {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": low, "maximum": high}},
        }
    )
    body = rule(grammar, "n-kv").split("::=", 1)[1]
    ranged = re.search(r"space (\w[\w-]*)$", body.strip())
    assert ranged is not None, body
    digits = rule(grammar, ranged.group(1)).split("::=", 1)[1].strip().removesuffix("space")
    pattern = _as_regex(digits.strip())
    wrong = [
        n for n in range(low - 200, high + 200) if bool(pattern.match(str(n))) != (low <= n <= high)
    ]
    assert not wrong, wrong[:5]


def test_a_bounded_number_takes_the_integers_in_its_range(vocab):
    grammar = json_grammar({"type": "number", "minimum": 0.5, "maximum": 3.5})
    pattern = _as_regex(rule(grammar, "root").split("::=", 1)[1].strip().removesuffix("space"))
    assert [n for n in range(-5, 10) if pattern.match(str(n))] == [1, 2, 3]
    llama_cpp.llama_sampler_free(compile_grammar(vocab, Grammar(grammar)))


def test_a_schema_too_deep_to_walk_is_a_grammar_error_not_a_crash():
    deep: dict = {"type": "string"}
    for _ in range(600):  # valid MFJS (anyOf nesting is not `properties` depth)
        deep = {"anyOf": [deep, {"type": "null"}]}
    with pytest.raises(GrammarError):
        json_grammar({"type": "object", "properties": {"a": deep}})


def _converted_within(schema: dict, seconds: float = 30.0) -> str | GrammarError:
    """The grammar or the refusal, from a thread that must finish in time (the
    converter once looped for ever on a stray ``]``: a regression fails here
    instead of hanging the run)."""
    outcome: list[str | GrammarError] = []

    def convert() -> None:
        try:
            outcome.append(json_grammar(schema))
        except GrammarError as error:
            outcome.append(error)

    worker = threading.Thread(target=convert, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"the grammar of {schema} took more than {seconds} s"
    return outcome[0]


@pytest.mark.parametrize(
    "pattern",
    [
        "^[]-a]$", "^[]]$", "^a}$", "^(ab|cd)]$",  # the converter never moved past these
        "^x{1,99999999}$", "^[0-9]{100000}$", "^" + "a{0,1000}" * 1000 + "$",  # gigabytes
        "^a{0,20_000}$", "^a{0,\uff12\uff10\uff10\uff10\uff10}$",  # int() reads them: a crash
    ],
)  # fmt: skip
def test_a_pattern_the_converter_would_never_finish_is_a_grammar_error(pattern: str):
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    refused = _converted_within(schema)
    assert isinstance(refused, GrammarError), refused
    assert pattern[:8] in str(refused)


@pytest.mark.parametrize("pattern", [r"^\]x\}$", "^[a-z]{2,5}$", "^[0-9]{3}-[0-9]{4}$", r"^[\]]$"])
def test_escaped_brackets_classes_and_small_repetitions_still_convert(pattern: str, vocab):
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    grammar = _converted_within(schema)
    assert isinstance(grammar, str), grammar
    compile_grammar(vocab, Grammar(grammar))


def test_the_repetitions_of_every_pattern_in_a_schema_count_together():
    """Each pattern under the bound, the schema over it: still a refusal (a
    schema of many such properties made a grammar of gigabytes)."""
    one = {"type": "string", "pattern": "^a{0,800}$"}
    assert isinstance(_converted_within({"type": "object", "properties": {"a": one}}), str)
    many = {"type": "object", "properties": {name: one for name in "abc"}}
    refused = _converted_within(many)
    assert isinstance(refused, GrammarError) and "in all" in str(refused)


def test_all_of_references_convert(vocab):
    """``allOf`` over a ``$ref`` (pydantic v1's shape for a described
    sub-model): its properties are the object's."""
    schema = {
        "type": "object",
        "properties": {"address": {"allOf": [{"$ref": "#/$defs/Address"}], "description": "x"}},
        "required": ["address"],
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
    grammar = json_grammar(schema)
    compile_grammar(vocab, Grammar(grammar))
    assert '"\\"city\\""' in grammar or "city" in grammar
