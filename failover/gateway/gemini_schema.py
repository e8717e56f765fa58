"""Gemini's OpenAPI-subset schemas (``responseSchema``, ``parameters``) as JSON Schema.

Gemini's types may be upper case (``OBJECT``, as google-genai sends them) and mark
``nullable``; other providers take JSON Schema, so types are lower-cased, ``nullable``
becomes a ``"null"`` type, and Gemini's own ``propertyOrdering``, ``example`` and the
``enum`` format are left out. Counts sent as strings (int64 in proto JSON) become numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["json_schema"]

_COUNTS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)
_LEFT_OUT = frozenset({"propertyOrdering", "property_ordering", "example", "nullable"})
_SNAKE = {
    "any_of": "anyOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
}


def json_schema(node: Any) -> Any:
    """The JSON Schema a Gemini schema means (anything not a schema is returned as is)."""
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for raw_key, value in node.items():
        key = str(_SNAKE.get(raw_key, raw_key))
        if key in _LEFT_OUT:
            continue
        if key == "type" and isinstance(value, str):
            if value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {name: json_schema(child) for name, child in value.items()}
        elif key == "items":
            out["items"] = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema(child) for child in value]
        elif key == "format" and value == "enum":
            continue
        elif key in _COUNTS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        elif key in ("minimum", "maximum") and isinstance(value, str):
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out
