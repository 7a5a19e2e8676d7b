from moonbase.chat.tools import ToolPlan, calls_constraint
from moonbase.engines.llamacpp.sampler import json_grammar
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
