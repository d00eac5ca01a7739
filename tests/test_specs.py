"""The API documents: committed AsyncAPI (NATS) and OpenAPI (gateway) do not drift; the
AsyncAPI covers every subject and message; schemathesis fuzzes the live gateway from its
OpenAPI document with no server error; hypothesis fuzzes the wire decoders."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from clawhub.gateway import HubProcess
from clawhub.gateway.app import openapi_document
from clawhub.gateway.ws import parse_frame
from protocols import (
    API,
    MESSAGE_TYPES,
    ErrorCode,
    ProtocolError,
    WsAnswer,
    WsRequest,
    asyncapi,
    decode,
    decode_any,
    decode_object,
    render,
    type_name,
)

ROOT = Path(__file__).resolve().parent.parent
FIX = "run `clawhub schema` (make schema) and commit the result"


def test_committed_asyncapi_matches_the_protocol() -> None:
    path = ROOT / "protocols" / "asyncapi.json"
    assert path.read_text() == render(asyncapi()), f"{path} drifted: {FIX}"


def test_committed_openapi_matches_the_gateway() -> None:
    path = ROOT / "clawhub" / "openapi.json"
    assert path.read_text() == openapi_document(), f"{path} drifted: {FIX}"


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_covers_every_verb_and_message_and_its_refs_resolve() -> None:
    doc = asyncapi()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    for verb in API:
        assert f"claw.{{group}}.api.{{sender}}.{verb}" in addresses
    for call in ("register", "heartbeat", "deregister", "progress", "result"):
        assert f"claw.{{group}}.hub.{{sender}}.{call}" in addresses
    assert "claw.{group}.agent.{agent_id}.inbox" in addresses
    assert {m["name"] for m in doc["components"]["messages"].values()} == {
        type_name(m) for m in MESSAGE_TYPES
    }
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert len(refs) > 100
    for ref in refs:
        assert _resolve(doc, ref) is not None, ref


async def test_schemathesis_finds_no_server_error(hub_server: HubProcess, tmp_path: Path) -> None:
    admin = hub_server.admin_tokens["alpha"]
    spec = tmp_path / "openapi.json"
    spec.write_text(openapi_document())
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(spec),
        "--url",
        str(hub_server.gateway_url),
        "-H",
        f"Authorization: Bearer {admin}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        "12",
        "--seed",
        "7",
        "--request-timeout",
        "10",
        "--exclude-path",
        "/v1/events/stream",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "passed" in text.lower(), text[-2000:]
    assert hub_server.hubs["alpha"].nc is not None  # the hub is still serving


# -- hypothesis: the decoders never raise anything but ProtocolError -------------------------


def outcome(fn: Callable[[], BaseModel]) -> str:
    """``ok`` (a message), or ``refused`` (a ProtocolError with a code); anything else fails."""
    try:
        result = fn()
    except ProtocolError as exc:
        assert exc.code in ErrorCode
        return "refused"
    assert isinstance(result, BaseModel)
    return "ok"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
type_names = st.sampled_from([type_name(m) for m in MESSAGE_TYPES] + ["claw.v1.nope", ""])
messages = st.builds(
    lambda kind, body: {**body, "type": kind},
    type_names,
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | messages.map(lambda m: json.dumps(m).encode()))
def test_decode_any_never_crashes(data: bytes) -> None:
    assert outcome(lambda: decode_any(data)) in ("ok", "refused")


@settings(max_examples=200, deadline=None)
@given(messages, st.sampled_from(MESSAGE_TYPES))
def test_decode_object_never_crashes(obj: dict[str, Any], model: Any) -> None:
    first = outcome(lambda: decode_object(obj, model))
    assert outcome(lambda: decode(json.dumps(obj).encode(), model)) == first


frames = st.builds(
    lambda kind, ident, message: {"type": kind, "id": ident, "message": message},
    st.sampled_from(["claw.v1.ws.request", "claw.v1.ws.answer", "claw.v1.ws.push", "x"]),
    st.none() | st.text(max_size=70) | st.integers(),
    messages | json_values,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | frames.map(json.dumps) | st.binary(max_size=200))
def test_gateway_frame_decoding_never_crashes(data: str | bytes) -> None:
    try:
        frame = parse_frame(data, 200)
    except ProtocolError:
        return
    assert isinstance(frame, WsRequest | WsAnswer)
