"""The committed JSON Schemas (``protocols/schema``) match the wire models (STYLE item 3).

Agents in other languages validate against these files, so they must not drift: when a
model changes, run ``clawhub schema`` and commit the result.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from protocols import (
    MESSAGE_TYPES,
    AgentProfile,
    AttemptInfo,
    ErrorCode,
    Event,
    ProtocolError,
    Register,
    Result,
    SubmitTasks,
    TaskRef,
    TaskSpec,
    TaskState,
    TaskStatus,
    WsAnswer,
    decode,
    encode,
    message_schemas,
    render,
    type_name,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "protocols" / "schema"
FIX = "run `clawhub schema --out protocols/schema` and commit the result"

SCHEMAS = message_schemas()


def committed(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text())
    return data


def objects(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The message itself and every object model among its ``$defs``."""
    yield "<message>", schema
    for name, sub in schema.get("$defs", {}).items():
        if "properties" in sub:
            yield name, sub


def validator(model: type[BaseModel]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(committed(f"{type_name(model)}.json"))


# -- no drift ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_matches_the_model(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.is_file(), f"{path} is missing: {FIX}"
    assert path.read_text() == render(SCHEMAS[name]), f"{path} drifted from the model: {FIX}"


def test_no_extra_schema_files() -> None:
    on_disk = {p.name for p in SCHEMA_DIR.iterdir()}
    extra = sorted(on_disk - set(SCHEMAS))
    assert not extra, f"files without a message model in {SCHEMA_DIR}: {extra}; {FIX}"


def test_one_schema_per_message_type() -> None:
    assert set(SCHEMAS) == {f"{type_name(m)}.json" for m in MESSAGE_TYPES}
    assert len(SCHEMAS) == len(MESSAGE_TYPES)


def test_cli_check_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clawhub.cli", "schema", "--check", "--out", str(SCHEMA_DIR)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(SCHEMAS)} schemas up to date" in proc.stdout


def test_cli_check_fails_on_a_drifted_folder(tmp_path: Path) -> None:
    for name, body in SCHEMAS.items():
        (tmp_path / name).write_text(render(body))
    stale = tmp_path / "claw.v1.task.result.json"
    stale.write_text(stale.read_text().replace("fencing token", "fence"))
    (tmp_path / "claw.v1.gone.json").write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "clawhub.cli", "schema", "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "claw.v1.task.result.json" in proc.stderr
    assert "claw.v1.gone.json" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- shape of every message ------------------------------------------------------------------


@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=type_name)
def test_type_discriminator_is_fixed(model: type[BaseModel]) -> None:
    schema = committed(f"{type_name(model)}.json")
    kind = schema["properties"]["type"]
    assert kind.get("const") == type_name(model)
    assert "default" not in kind  # the decoder needs it: no default on the wire
    assert schema["required"][0] == "type"
    assert type_name(model).startswith("claw.v1.")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{type_name(model)}.json"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=type_name)
def test_unknown_fields_are_refused_everywhere(model: type[BaseModel]) -> None:
    schema = committed(f"{type_name(model)}.json")
    for name, obj in objects(schema):
        assert obj.get("additionalProperties") is False, f"{name} in {type_name(model)}"


@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=type_name)
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    schema = committed(f"{type_name(model)}.json")
    for name, obj in objects(schema):
        assert obj.get("description"), f"{name} in {type_name(model)} has no docstring"
        bare = [p for p, v in obj["properties"].items() if p != "type" and not v.get("description")]
        assert not bare, f"undocumented fields of {name} in {type_name(model)}: {bare}"


# -- real messages against the committed files ----------------------------------------------


def register() -> Register:
    return Register(
        profile=AgentProfile(id="coder", name="Coder", skills={"python": 0.9}, model=None),
        session="s1",
        running=[TaskRef(task_id="t1", attempt=2)],
    )


def result() -> Result:
    return Result(
        task_id="t1",
        attempt=2,
        agent_id="coder",
        session="s1",
        output={"answer": [1, 2.5, "x", None, True]},
        duration=0.25,
    )


def status() -> TaskStatus:
    return TaskStatus(
        id="t1",
        spec=TaskSpec(id="t1", title="add", skills={"python": 0.5}, input={"a": 1}),
        state=TaskState.DONE,
        attempt=1,
        failures=0,
        output=3,
        created_at=1.0,
        updated_at=2.0,
        history=[AttemptInfo(attempt=1, agent_id="coder", outcome="done", offered_at=1.5)],
    )


MESSAGES: list[BaseModel] = [
    register(),
    result(),
    status(),
    SubmitTasks(tasks=[TaskSpec(id="a", title="a"), TaskSpec(title="b", depends_on=["a"])]),
    Event(seq=3, ts=1.0, kind="task.done", task_id="t1", data={"fraction": 1.0}),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_encoded_messages_validate(message: BaseModel) -> None:
    data = json.loads(encode(message))
    validator(type(message)).validate(data)


def test_extra_field_fails_validation() -> None:
    check = validator(Register)
    data = json.loads(encode(register()))
    top = copy.deepcopy(data)
    top["nickname"] = "x"
    nested = copy.deepcopy(data)
    nested["profile"]["colour"] = "red"
    deep = copy.deepcopy(data)
    deep["running"][0]["lease"] = 1
    for bad in (top, nested, deep):
        with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
            check.validate(bad)


def test_wrong_type_or_bad_values_fail_validation() -> None:
    data = json.loads(encode(result()))
    with pytest.raises(jsonschema.ValidationError):
        validator(Register).validate(data)  # a Result is not a Register
    wrong = dict(data, type="claw.v1.task.progress")
    with pytest.raises(jsonschema.ValidationError):
        validator(Result).validate(wrong)
    with pytest.raises(jsonschema.ValidationError):
        validator(Result).validate(dict(data, attempt=0))  # attempts start at 1
    with pytest.raises(jsonschema.ValidationError):
        validator(Result).validate(dict(data, task_id="no spaces allowed"))
    missing = dict(data)
    del missing["session"]
    with pytest.raises(jsonschema.ValidationError, match="session"):
        validator(Result).validate(missing)


def test_type_is_required_by_the_schema_as_by_the_decoder() -> None:
    data = json.loads(encode(register()))
    del data["type"]
    with pytest.raises(jsonschema.ValidationError, match="'type' is a required property"):
        validator(Register).validate(data)
    with pytest.raises(ProtocolError) as refused:
        decode(json.dumps(data).encode(), Register)
    assert refused.value.code is ErrorCode.UNKNOWN_TYPE
    # nested messages too: an answer's Accept and an offer's Assignment name their type
    answer = {"type": "claw.v1.ws.answer", "id": "o1", "message": {"task_id": "t1"}}
    answer["message"].update(attempt=1, agent_id="coder")
    with pytest.raises(jsonschema.ValidationError):
        validator(WsAnswer).validate(answer)
    with pytest.raises(ProtocolError):
        decode(json.dumps(answer).encode(), WsAnswer)


def test_every_message_object_requires_its_type() -> None:
    for name, schema in SCHEMAS.items():
        for where, obj in objects(schema):
            kind = obj["properties"].get("type", {})
            if str(kind.get("const", "")).startswith("claw.v1."):
                assert "type" in obj.get("required", []), f"{where} in {name}"
                assert "default" not in kind, f"{where} in {name}"


def test_skill_maps_name_their_keys() -> None:
    data = json.loads(encode(register()))
    assert validator(Register).is_valid(data)
    for key in ("Not a skill", "", "x" * 65, "a/b"):
        bad = copy.deepcopy(data)
        bad["profile"]["skills"] = {key: 0.5}
        with pytest.raises(jsonschema.ValidationError, match="does not match"):
            validator(Register).validate(bad)
    spec = SubmitTasks(tasks=[TaskSpec(title="a", skills={"python": 0.5})])
    submit = json.loads(encode(spec))
    submit["tasks"][0]["skills"] = {"no spaces": 0.5}
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        validator(SubmitTasks).validate(submit)
    for name, schema in SCHEMAS.items():
        for where, obj in objects(schema):
            for field, prop in obj["properties"].items():
                if "patternProperties" in prop:
                    (pattern,) = prop["patternProperties"]
                    assert prop["propertyNames"] == {"pattern": pattern}, (name, where, field)
