"""JSON Schema export of every message, for agents written in any language. Pure: the
CLI (`clawhub schema`) writes the files; a test checks the committed ones do not drift.

The exported schemas say what the wire carries, which is a little more than the models'
own ``model_json_schema``:

- ``type`` is **required** (and ``const``): the models give it a default so Python code
  need not repeat it, but the decoder (``protocols.codec.decode``) picks the model by it and
  refuses a message without one (``unknown_type``);
- a map keyed by skill names (``skills``) names the pattern of its keys in
  ``propertyNames`` too, not only in ``patternProperties`` (which lets any other key pass).

The models' validation is unchanged: this only edits the exported documents.
"""

from __future__ import annotations

import json
from typing import Any

from .codec import MESSAGE_TYPES, type_name

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Keywords whose values are data, not schemas: never rewritten.
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})
#: Keywords whose values map names to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


def wire_schema(node: Any) -> Any:
    """``node`` (a JSON Schema, or a part of one) as the wire carries it, edited in place:
    every message object requires its ``type`` (and has no default for it), and every map
    with one key pattern names it in ``propertyNames``."""
    if isinstance(node, list):
        for item in node:
            wire_schema(item)
        return node
    if not isinstance(node, dict):
        return node
    kind = node.get("properties", {}).get("type")
    if isinstance(kind, dict) and str(kind.get("const", "")).startswith("claw.v1."):
        kind.pop("default", None)
        required = node.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "propertyNames" not in node:
        node["propertyNames"] = {"pattern": next(iter(patterns))}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for sub in value.values():  # names → schemas (a field may be called `default`)
                wire_schema(sub)
        elif key not in _DATA_KEYWORDS:
            wire_schema(value)
    return node


def message_schemas() -> dict[str, dict[str, Any]]:
    """File name (``claw.v1.task.result.json``) → JSON Schema of that message."""
    out: dict[str, dict[str, Any]] = {}
    for model in MESSAGE_TYPES:
        name = type_name(model)
        schema = wire_schema(model.model_json_schema(mode="validation"))
        schema = {"$schema": SCHEMA_DIALECT, "$id": f"{name}.json", **schema}
        out[f"{name}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """The canonical text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
