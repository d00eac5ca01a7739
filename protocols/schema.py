"""JSON Schema export of every message, for agents written in any language. Pure: the
CLI (`clawhub schema`) writes the files; a test checks the committed ones do not drift."""

from __future__ import annotations

import json
from typing import Any

from .codec import MESSAGE_TYPES, type_name

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def message_schemas() -> dict[str, dict[str, Any]]:
    """File name (``claw.v1.task.result.json``) → JSON Schema of that message."""
    out: dict[str, dict[str, Any]] = {}
    for model in MESSAGE_TYPES:
        name = type_name(model)
        schema = model.model_json_schema(mode="validation")
        schema = {"$schema": SCHEMA_DIALECT, "$id": f"{name}.json", **schema}
        out[f"{name}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """The canonical text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
