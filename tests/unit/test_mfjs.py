"""The MFJS validator against Moonshot's conformance vectors, and what its errors say."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moonbase.chat.mfjs import Level, SchemaError, parse_and_validate, validate_schema
from tests.datafiles import mfjs_lines


def vectors(file_name: str) -> list[Any]:
    """One param per non-blank line of every suite's `file_name`, named suite:line."""
    return [
        pytest.param(line, id=f"{suite}:{number}") for suite, number, line in mfjs_lines(file_name)
    ]


VALID = vectors("valid.jsonl")
INVALID = vectors("invalid.jsonl")


def refusal(schema: object, level: Level = Level.STRICT) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        validate_schema(schema, level)
    return caught.value


def test_the_vectors_are_there():
    assert len(VALID) > 100
    assert len(INVALID) > 100


@pytest.mark.parametrize("line", VALID)
def test_valid_vector_is_accepted(line: str):
    validate_schema(json.loads(line), Level.TEST)
    assert parse_and_validate(line, Level.TEST) == json.loads(line)


@pytest.mark.parametrize("line", INVALID)
def test_invalid_vector_is_refused(line: str):
    case = json.loads(line)
    with pytest.raises(SchemaError) as caught:
        parse_and_validate(case["schema"], Level.TEST)
    if case["unmarshal"]:  # not JSON at all: nothing in it to point at
        assert (caught.value.keyword, caught.value.path) == (None, "#")


def test_an_unsupported_keyword_is_named_with_its_place_at_the_vectors_level():
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "x"}}}
    error = refusal(schema, Level.TEST)
    assert (error.keyword, error.path) == ("format", "#/properties/a")
    assert "'format'" in str(error) and "#/properties/a" in str(error)
    assert isinstance(error, ValueError)
    validate_schema(schema)  # the server's level does not judge keywords it does not know


def test_pattern_is_tolerated_on_strings_only():
    # The vectors accept `pattern` on a string (walle lets it through unenforced).
    validate_schema({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}})
    error = refusal({"type": "object", "properties": {"a": {"type": "integer", "pattern": "x"}}})
    assert (error.keyword, error.path) == ("pattern", "#/properties/a")


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "minLength": 1}, "minLength"),
        ({"type": "array", "properties": {}}, "properties"),
        ({"type": "string", "minItems": 1}, "minItems"),
    ],
)
def test_keywords_must_fit_the_type(schema: dict[str, Any], keyword: str):
    for level in Level:
        error = refusal(schema, level)
        assert (error.keyword, error.path) == (keyword, "#")
        assert "invalid keywords" in str(error)


def test_a_default_beside_a_type_list_is_refused_only_at_the_vectors_level():
    schema = {"type": ["string", "null"], "default": None}
    validate_schema(schema)
    error = refusal(schema, Level.TEST)
    assert (error.keyword, error.path) == ("default", "#")
    assert "invalid keywords" in str(error)


def test_paths_are_json_pointers():
    inner = {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": "0"}]}
    middle = {"type": "object", "properties": {"v": inner}}
    error = refusal({"type": "object", "properties": {"a/b": middle}})
    assert (error.keyword, error.path) == ("minimum", "#/properties/a~1b/properties/v/anyOf/1")


def test_errors_inside_definitions_point_into_defs():
    error = refusal({"$defs": {"User": {"type": "object", "required": ["id"]}}, "type": "object"})
    assert (error.keyword, error.path) == ("required", "#/$defs/User")


def test_siblings_of_anyof_and_ref_are_refused_only_at_the_vectors_level():
    beside_anyof = {"properties": {"v": {"anyOf": [{"type": "string"}], "default": "x"}}}
    error = refusal(beside_anyof, Level.TEST)
    assert (error.keyword, error.path) == ("default", "#/properties/v")
    beside_ref = {"properties": {"v": {"$ref": "#", "type": "object"}}}
    error = refusal(beside_ref, Level.TEST)
    assert (error.keyword, error.path) == ("type", "#/properties/v")
    validate_schema(beside_anyof)
    validate_schema(beside_ref)


def test_a_recursion_that_cannot_end_points_at_the_reference():
    node = {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}, "required": ["next"]}
    schema = {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/N"}},
        "required": ["node"],
        "$defs": {"N": node},
    }
    error = refusal(schema)
    assert (error.keyword, error.path) == ("$ref", "#/properties/node")
    assert "infinite recursion" in str(error)
    # the same loop behind an optional property is fine: {} is a finite value
    validate_schema({**schema, "required": []})


def test_not_json_or_not_an_object_has_no_keyword():
    for text in ("{", '{"type": "number", "enum": [NaN]}', "[]", "null", '"object"'):
        with pytest.raises(SchemaError) as caught:
            parse_and_validate(text)
        assert (caught.value.keyword, caught.value.path) == (None, "#")
    assert refusal(["type", "string"]).keyword is None


def test_the_empty_schema_is_returned_as_parsed():
    assert parse_and_validate(" {} ") == {}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(["object", "array", "string", "integer", "#", "#/$defs/x"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "properties", "items", "anyOf", "$ref", "$defs", "enum", "x"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@given(json_values)
def test_any_json_is_either_accepted_or_refused_with_schema_error(value: object):
    try:
        validate_schema(value)
    except SchemaError as error:
        assert error.path.startswith("#")


# The invalid vectors that Moonshot's server level accepts, each with the
# check that only walle's TEST (ultra) level makes (tests/data/mfjs/LEVELS.md).
BESIDE_ANYOF = "keywords beside anyOf"
BESIDE_REF = "keywords beside $ref"
EMPTY_NAME = "an empty property name"
ID_BELOW_ROOT = "$id below the root"
UNKNOWN_KEYWORD = "a keyword MFJS does not know"
ACCEPTED_ONLY_AT_THE_SERVER_LEVEL = {
    "TestAnyOf:5": BESIDE_ANYOF,
    "TestAnyOf:7": BESIDE_ANYOF,
    "TestAnyOf:8": BESIDE_ANYOF,
    "TestAnyOf:9": BESIDE_ANYOF,
    "TestAnyOf:10": BESIDE_ANYOF,
    "TestBasicTypes:14": EMPTY_NAME,
    "TestBasicTypes:23": BESIDE_REF,
    "TestBasicTypes:24": BESIDE_REF,
    "TestBasicTypes:45": ID_BELOW_ROOT,
    "TestBasicTypes:46": ID_BELOW_ROOT,
    "TestEnforcerCases:2": UNKNOWN_KEYWORD,
    "TestEnforcerCases:3": UNKNOWN_KEYWORD,
    "TestEnforcerCases:4": BESIDE_ANYOF,
    "TestEnforcerCases:5": UNKNOWN_KEYWORD,
    "TestEnforcerCases:6": UNKNOWN_KEYWORD,
    "TestKeywordsValidation:7": BESIDE_ANYOF,
    "TestKeywordsValidation:8": BESIDE_ANYOF,
    "TestKeywordsValidation:9": BESIDE_ANYOF,
    "TestReferences:6": BESIDE_REF,
    "TestReferences:8": BESIDE_REF,
    "TestReferences:9": BESIDE_REF,
    "TestReferences:17": BESIDE_ANYOF,
    "TestTypeLocation:1": BESIDE_ANYOF,
}
_WORDING = {
    BESIDE_ANYOF: "anyOf",
    BESIDE_REF: "$ref",
    EMPTY_NAME: "property name cannot be empty",
    ID_BELOW_ROOT: "must be at root level",
    UNKNOWN_KEYWORD: "unsupported keywords",
}


def test_exactly_the_listed_invalid_vectors_pass_at_the_server_level():
    accepted = {}
    for suite, number, line in mfjs_lines("invalid.jsonl"):
        case = json.loads(line)
        if case["unmarshal"]:
            continue
        schema = json.loads(case["schema"])
        try:
            validate_schema(schema, Level.STRICT)
        except SchemaError:
            continue
        accepted[f"{suite}:{number}"] = str(refusal(schema, Level.TEST))
    assert set(accepted) == set(ACCEPTED_ONLY_AT_THE_SERVER_LEVEL)
    for vector, reason in ACCEPTED_ONLY_AT_THE_SERVER_LEVEL.items():
        assert _WORDING[reason] in accepted[vector], (vector, accepted[vector])


def test_pydantic_optional_fields_pass_at_the_server_level_only():
    from pydantic import BaseModel

    class Params(BaseModel):
        path: str
        limit: int | None = None

    schema = Params.model_json_schema()
    assert schema["properties"]["limit"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "default": None,
        "title": "Limit",
    }
    validate_schema(schema)
    assert refusal(schema, Level.TEST).keyword == "default"


def test_a_schema_nested_past_the_walking_limit_is_refused_at_every_level():
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(300):  # anyOf in anyOf: no `properties` depth, still 300 levels
        deep = {"anyOf": [deep, {"type": "null"}]}
    for level in Level:
        error = refusal({"type": "object", "properties": {"a": deep}}, level)
        assert "more than 64 levels" in str(error)
