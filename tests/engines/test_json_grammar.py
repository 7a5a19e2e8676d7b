import pytest

from moonbase.engines.llamacpp.sampler import GrammarError, json_grammar


def test_strings_exclude_raw_control_characters():
    grammar = json_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
    char_rule = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char_rule


def test_json_object_mode_has_an_object_root():
    root = next(line for line in json_grammar(None).splitlines() if line.startswith("root ::="))
    assert "object" in root or '"{"' in root


def test_unconvertible_schemas_are_a_grammar_error():
    with pytest.raises(GrammarError):
        json_grammar({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})
