"""When the wire models build their validators.

Every wire model defers its build (``defer_build`` in ``WireModel``'s config): a class costs
little to define, and its validator and serializer are built the first time it is used (its
first ``decode``, ``encode``, ``model_validate`` or JSON Schema). An agent uses a handful of
the messages, so ``import agents_sdk`` builds none of them and an agent builds only those.

A process that uses them all (the hub) builds them at once with ``build_models``, which
also turns the deferral off for them: a ``TypeAdapter`` of a deferred model defers too, and
FastAPI (which makes one per request body inside a block that silences pydantic's warning
about the body's ``alias``) would otherwise build it later, outside that block, and warn.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from .codec import MESSAGE_TYPES


def build_models(models: Iterable[type[BaseModel]] = MESSAGE_TYPES) -> None:
    """Build ``models`` (every message, by default) now, and defer them no more."""
    for model in models:
        model.model_rebuild()  # builds a deferred model; nothing to do for a built one
        model.model_config["defer_build"] = False
