"""Tool schemas in two dialects: BFCL's function docs and OpenAI JSON-schema tools.

BFCL writes parameter types with Python names ("dict", "float", "tuple", "any"); OpenAI tools
use JSON-schema names ("object", "number", "array", no type). The checker works on BFCL's
names, so `checker_type` maps either dialect back. The round trip BFCL -> OpenAI -> checker is
lossless for checking: "tuple" and "array" are both lists checked one level deep, and a schema
without a type is BFCL's "any" again (the agreement test runs the checker on converted tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# BFCL / Python type names -> JSON-schema names. None means "no type constraint".
_TO_JSON_SCHEMA: dict[str, str | None] = {
    "dict": "object", "object": "object",
    "float": "number", "number": "number",
    "integer": "integer", "int": "integer",
    "string": "string", "str": "string",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "tuple": "array",
    "any": None,
    "null": "null",
}

# JSON-schema (or BFCL) type names -> the BFCL name the checker understands.
_TO_CHECKER: dict[str, str] = {
    "object": "dict", "dict": "dict",
    "number": "float", "float": "float",
    "integer": "integer", "int": "integer",
    "string": "string", "str": "string",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array",
    "tuple": "tuple",
    "any": "any",
}

# The Python type a JSON value must have for each checker type (as in BFCL: "any" is a string).
PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}
NESTED_CHECKED = ("array", "tuple")


def bfcl_schema_to_json_schema(schema: Any) -> Any:
    """Convert one BFCL parameter schema (recursively) to JSON-schema type names."""
    if not isinstance(schema, dict):
        return schema
    converted = {k: v for k, v in schema.items() if k != "optional"}
    if "type" in schema and isinstance(schema["type"], str):
        json_type = _TO_JSON_SCHEMA.get(schema["type"], schema["type"])
        if json_type is None:
            del converted["type"]
        else:
            converted["type"] = json_type
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {
            name: bfcl_schema_to_json_schema(sub) for name, sub in schema["properties"].items()
        }
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            converted[key] = bfcl_schema_to_json_schema(schema[key])
    return converted


def bfcl_function_to_openai_tool(function: dict) -> dict:
    """A BFCL function doc -> an OpenAI tool `{"type": "function", "function": {...}}`."""
    parameters = bfcl_schema_to_json_schema(function.get("parameters", {"type": "dict"}))
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": parameters,
        },
    }


def checker_type(schema: Any) -> str:
    """The BFCL type name of a parameter schema in either dialect.

    A JSON-schema type list such as ["string", "null"] uses its first non-null entry; a schema
    without a (known) type is "any", which BFCL checks as a string.
    """
    if not isinstance(schema, dict):
        return "any"
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if not isinstance(declared, str):
        return "any"
    return _TO_CHECKER.get(declared, "any")


@dataclass(frozen=True)
class FunctionDoc:
    """What the checker needs of one offered function."""

    name: str
    properties: dict[str, dict]
    required: list[str]


def function_doc(tool: dict) -> FunctionDoc:
    """Accept an OpenAI tool, a bare OpenAI function or a BFCL function doc."""
    function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    if "name" not in function:
        raise ValueError(f"tool without a name: {tool!r}")
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = parameters.get("required") or []
    return FunctionDoc(name=function["name"], properties=properties, required=list(required))


def tool_names(tools: list[dict]) -> list[str]:
    return [function_doc(tool).name for tool in tools]
