"""The codec's fast paths say the same as pydantic's plain ones: ``encode`` writes the bytes
``model_dump_json`` writes, ``decode``'s one-pass path and its checked path (``json.loads``,
hard edges, ``model_validate``) accept and refuse the same payloads with the same codes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from clawhub.board.matching import Scored
from clawhub.board.state import Journal
from protocols import (
    MESSAGE_TYPES,
    Accept,
    Assignment,
    CandidateScore,
    Decline,
    ErrorCode,
    Event,
    Heartbeat,
    Progress,
    ProtocolError,
    Result,
    ResultAck,
    SubmitTasks,
    Submitted,
    TaskRef,
    TaskSpec,
    TaskState,
    decode,
    decode_any,
    decode_object,
    encode,
    type_name,
)
from protocols._base import trusted

SPEC = TaskSpec(id="t1", title="t1", skills={"work": 0.5}, input={"n": 1, "x": [1.5, None]})
HOT: list[BaseModel] = [
    Event(seq=7, ts=1.7e9, kind="task.done", task_id="t1", agent_id="a1", attempt=1,
          state="done", message="fini \u00e9 \u2603", data={"output": 1, "why": [0.5, "x"]}),
    Assignment(task_id="t1", attempt=1, spec=SPEC, stall_timeout=30.0),
    Accept(task_id="t1", attempt=1, agent_id="a1"),
    Progress(task_id="t1", attempt=1, agent_id="a1", fraction=0.5, message="half", ts=1.7e9),
    Result(task_id="t1", attempt=2, agent_id="a1", session="s1", output=[1, {"a": 1e-7}]),
    ResultAck(task_id="t1", attempt=1, accepted=True, state=TaskState.DONE),
    Heartbeat(agent_id="a1", session="s1", ts=1.7e9, running=[TaskRef(task_id="t1", attempt=1)]),
    SubmitTasks(tasks=[SPEC, SPEC.model_copy(update={"id": "t2"})]),
    Submitted(ids=["t1", "t2"]),
]  # fmt: skip


def slow(data: bytes, *models: type[BaseModel]) -> BaseModel:
    """The checked path alone: the standard library's parser, the edges, ``model_validate``."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.MALFORMED, str(exc)) from None
    return decode_object(obj, *models)


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ProtocolError as exc:
        return exc.code.value, exc.message


@pytest.mark.parametrize("message", HOT, ids=lambda m: type(m).__name__)
def test_hot_messages_encode_as_pydantic_and_decode_on_both_paths(message: BaseModel) -> None:
    data = encode(message)
    assert data == message.model_dump_json().encode()
    assert data.startswith(b'{"type":"' + type_name(type(message)).encode() + b'"')
    model = type(message)
    assert decode(data, model) == message == slow(data, model) == decode_any(data)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=30),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    ),
)
def test_any_event_encodes_as_pydantic(message: str, value: Any) -> None:
    event = Event(seq=1, ts=1.5, kind="k", message=message, data={"v": value})
    data = encode(event)
    assert data == event.model_dump_json().encode()
    assert outcome(lambda: decode(data, Event)) == outcome(lambda: slow(data, Event))


def test_non_finite_floats_encode_as_null_like_pydantic() -> None:
    event = Event(seq=1, ts=1.5, kind="k", data={"a": math.inf, "b": math.nan})
    assert encode(event) == event.model_dump_json().encode()
    assert b'"data":{"a":null,"b":null}' in encode(event)


def test_a_type_name_that_starts_another_is_not_taken_for_it() -> None:
    ack = encode(ResultAck(task_id="t1", attempt=1, accepted=True, state=TaskState.DONE))
    assert type_name(ResultAck).startswith(type_name(Result))
    code, text = outcome(lambda: decode(ack, Result))
    assert code == "unknown_type"
    assert "'claw.v1.task.result_ack' is not accepted here" in text


def test_the_model_is_chosen_among_several_by_its_type() -> None:
    accept = Accept(task_id="t1", attempt=1, agent_id="a1")
    assert decode(encode(accept), Decline, Accept) == accept
    decline = Decline(task_id="t1", attempt=1, agent_id="a1", reason="busy")
    assert decode(encode(decline), Accept, Decline) == decline


refusals = [
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":0,"agent_id":"a1"}',
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":1,"agent_id":"a1","x":1}',
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":99999999999999999999,"agent_id":"a1"}',
    b'{"type":"claw.v1.task.accept","task_id":"t\\u0000","attempt":1,"agent_id":"a1"}',
    b'{"type":"claw.v1.task.accept","task_id":"\\ud800","attempt":1,"agent_id":"a1"}',
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":1,"agent_id":"a1"',
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":1,"agent_id":"a1"} x',
    b'{"type":"claw.v1.task.accept","task_id":"t1","attempt":1,"agent_id":"a1",'
    b'"type":"claw.v1.task.decline"}',
    b'{"type":"claw.v1.task.accept"}',
]


@pytest.mark.parametrize("data", refusals)
def test_refusals_are_the_same_on_both_paths(data: bytes) -> None:
    fast = outcome(lambda: decode(data, Accept))
    assert fast[0] != "ok"
    assert fast[0] == outcome(lambda: slow(data, Accept))[0]


def test_every_message_type_has_a_distinct_head() -> None:
    heads = [b'{"type":"' + type_name(m).encode() + b'"' for m in MESSAGE_TYPES]
    assert len(set(heads)) == len(MESSAGE_TYPES)


def test_trusted_messages_are_the_validated_ones() -> None:
    data: dict[str, Any] = {"why": [{"agent_id": "a1", "score": 0.5}], "n": 1}
    values: dict[str, Any] = {
        "type": "claw.v1.event", "seq": 3, "ts": 1.5, "kind": "task.assigned",
        "task_id": "t1", "agent_id": "a1", "attempt": 1, "state": "assigned",
        "message": "offered", "data": data,
    }  # fmt: skip
    fast = trusted(Event, dict(values))
    slow = Event(**{k: v for k, v in values.items() if k != "type"})
    assert fast == slow
    assert encode(fast) == encode(slow)
    assert fast.model_fields_set == slow.model_fields_set
    assert repr(fast) == repr(slow)
    assert Event.__pydantic_post_init__ is None  # nothing that construction would skip
    fast.message = "changed"  # still a model: assignment works and is recorded
    assert fast.message == "changed"
    scored = Scored(0.9, "a1", 0.8, 0.5, 1.0, 0.25).wire()
    assert scored == CandidateScore(
        agent_id="a1", score=0.9, skill=0.8, load=0.5, reliability=1.0, cost=0.25
    )
    assert (
        encode(scored)
        == CandidateScore.model_validate(scored.model_dump()).model_dump_json().encode()
    )


def test_journal_events_are_valid_and_own_their_data(tmp_path: Any) -> None:
    class Sink:
        def __init__(self) -> None:
            self.events: list[Event] = []

        def write(self, row: Any) -> None:
            pass

        def publish(self, event: Event) -> None:
            self.events.append(event)

    sink = Sink()
    journal = Journal("g1", sink)  # type: ignore[arg-type]
    data: dict[str, Any] = {"k": [1, 2]}
    event = journal.emit("task.progress", task_id="t1", agent_id="a1", attempt=2, data=data)
    refused = ProtocolError(ErrorCode.INVALID, "bad")
    journal.refused("claw.g1.hub.a1.result", refused, agent_id="a1")
    assert [e.seq for e in sink.events] == [1, 2]
    for published in sink.events:
        assert Event.model_validate_json(encode(published)) == published
    data["extra"] = 1
    assert event.data == {"k": [1, 2]}  # a copy, as validation would have made
