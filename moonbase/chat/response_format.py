"""``response_format`` -> the engine's JSON constraint.

``json_object``: one valid JSON object. ``json_schema`` with ``strict`` (the
default): the schema must be MFJS (else a 400 naming the keyword and where it
is) and the output follows it. With ``strict: false`` any schema is accepted
and only a valid JSON object is guaranteed, as the platform documents.
"""

from __future__ import annotations

from moonbase.chat.mfjs import SchemaError, validate_schema
from moonbase.engines.base import JsonConstraint
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import ResponseFormat

SCHEMA_PARAM = "response_format.json_schema.schema"


def output_constraint(response_format: ResponseFormat | None) -> JsonConstraint | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JsonConstraint()
    spec = response_format.json_schema
    if spec is None:
        raise BadRequestError(
            "response_format json_schema needs a json_schema object with name and schema",
            param="response_format.json_schema",
        )
    if not spec.strict:
        return JsonConstraint()
    try:
        validate_schema(spec.schema_)
    except SchemaError as exc:
        raise BadRequestError(
            f"response_format.json_schema.schema is not valid MFJS: {exc}", param=SCHEMA_PARAM
        ) from exc
    if spec.schema_.get("type", "object") != "object":
        raise BadRequestError(
            "the response schema must describe a JSON object (type: object)", param=SCHEMA_PARAM
        )
    return JsonConstraint(schema=spec.schema_)
