"""The wire models build their validators on first use (``defer_build``), so that ``import
agents_sdk`` builds none; the hub's gateway builds them all at once (``build_models``), and
FastAPI's request bodies then build with no warning. Each check runs in a fresh interpreter,
where nothing was built before."""

from __future__ import annotations

import subprocess
import sys


def run(code: str, *flags: str) -> str:
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_agents_sdk_builds_no_wire_model() -> None:
    out = run(
        "import agents_sdk\nfrom protocols import MESSAGE_TYPES, TaskSpec\n"
        "print(len(MESSAGE_TYPES) > 30, [m.__name__ for m in (*MESSAGE_TYPES, TaskSpec)"
        " if m.__pydantic_complete__])"
    )
    assert out == "True []"


def test_a_deferred_model_builds_on_first_use_and_round_trips() -> None:
    out = run(
        "from protocols import AgentProfile, Register, RegisterAck, decode, encode\n"
        "r = Register(profile=AgentProfile(id='a-1', name='a', skills={'python': 0.5}),"
        " session='s')\n"
        "back = decode(encode(r), Register)\n"
        "print(back == r, Register.__pydantic_complete__, RegisterAck.__pydantic_complete__)\n"
        "try:\n"
        "    Register.model_validate({'type': 'claw.v1.agent.register', 'extra': 1})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)"
    )
    assert out == "True True False\nValidationError"


def test_build_models_builds_every_message_and_defers_them_no_more() -> None:
    out = run(
        "from protocols import MESSAGE_TYPES, TaskSpec, WireModel, build_models\n"
        "build_models()\n"
        "print(all(m.__pydantic_complete__ for m in MESSAGE_TYPES),"
        " {m.model_config.get('defer_build') for m in MESSAGE_TYPES},"
        " TaskSpec.model_config.get('defer_build'), WireModel.model_config.get('defer_build'))"
    )
    assert out == "True {False} True True"


def test_the_gateway_app_and_its_openapi_raise_no_pydantic_warning() -> None:
    """Deferred request bodies made FastAPI warn (``UnsupportedFieldAttributeWarning`` about
    the body's ``alias``) when their type adapters were built outside FastAPI's own filter;
    here any warning is an error."""
    out = run(
        "from clawhub.gateway.app import openapi_document\n"
        "import json\n"
        "spec = json.loads(openapi_document())\n"
        "print(spec['paths']['/v1/api/submit']['post']['requestBody']['content']"
        "['application/json']['schema'])",
        "-W",
        "error",
    )
    assert out == "{'$ref': '#/components/schemas/SubmitTasks'}"
