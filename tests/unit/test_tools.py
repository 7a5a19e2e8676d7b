from moonbase.chat.tools import ToolPlan, calls_constraint, parse_reply
from moonbase.engines.llamacpp.json_grammar import json_grammar
from moonbase.schemas.chat import ToolDefinition


def tool(name: str, parameters: dict) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {"type": "function", "function": {"name": name, "parameters": parameters}}
    )


def test_tools_defs_are_hoisted_with_their_references_renamed():
    tree = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
    }
    plan = ToolPlan([tool("make_tree", tree), tool("other", {"type": "object"})], True, 0)
    schema = calls_constraint(plan).schema
    assert schema is not None
    assert set(schema["$defs"]) == {"make_tree__root", "make_tree__node"}
    node = schema["$defs"]["make_tree__node"]
    assert node["properties"]["kids"]["items"] == {"$ref": "#/$defs/make_tree__node"}
    variants = schema["properties"]["calls"]["items"]["anyOf"]
    assert variants[0]["properties"]["arguments"] == {"$ref": "#/$defs/make_tree__root"}
    assert "root ::=" in json_grammar(schema)  # llama.cpp's converter accepts the result


def _weather_plan(forced: bool) -> ToolPlan:
    tool = ToolDefinition.model_validate(
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    )
    return ToolPlan([tool], forced, 0)


def test_a_forced_reply_cut_by_max_tokens_keeps_its_finished_calls():
    text = (
        '{"calls": [{ "name": "get_weather", "arguments": { "city": "Beijing"}}, '
        '{"name": "get_weather", "arguments": { "city": "Bei'
    )
    reply = parse_reply(text, _weather_plan(forced=True))
    assert reply.content is None
    assert [call["function"]["arguments"] for call in reply.calls] == ['{"city": "Beijing"}']
    assert reply.calls[0]["id"] == "functions.get_weather:0"


def test_a_forced_reply_cut_before_any_call_is_handed_back_as_text():
    reply = parse_reply('{"calls": [{"name": "get_w', _weather_plan(forced=True))
    assert reply.calls == [] and reply.content == '{"calls": [{"name": "get_w'
