"""``python -m bench.codec [--quick]``: the codec on the hot messages, in process.

For each hot message (``Event``, ``Assignment``, ``Accept``, ``Progress``, ``Result``,
``ResultAck``, ``Heartbeat``, ``SubmitTasks``, ``Submitted``): ``encode`` against pydantic's
plain ``model_dump_json().encode()``, and ``decode`` (hard edges checked) against pydantic's
plain ``model_validate_json`` (no edge checks), measured in the same run, rounds interleaved:
the least CPU time per call (process time: a shared machine's other work does not count)
and the median of the rounds' ratios. Also the board's event construction
(``Journal.emit``: built, stored as a row and encoded as the hub publishes it) against a
validated ``Event(...)`` and the same row and encoding, and ``Scored.wire`` against a
validated ``CandidateScore``. A ratio under 1 means the codec costs less than pydantic.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel

from clawhub.board.matching import Scored
from clawhub.board.rows import Change, dumps
from clawhub.board.state import Journal
from protocols import (
    Accept,
    Assignment,
    Cancel,
    CandidateScore,
    Event,
    Heartbeat,
    Progress,
    Result,
    ResultAck,
    SubmitTasks,
    Submitted,
    TaskRef,
    TaskSpec,
    TaskState,
    ValidationStep,
    decode,
    encode,
)

from .common import Row

S = "codec"
ROUNDS = 21


def samples() -> list[BaseModel]:
    """One message of each hot type, as the throughput scenario sends them."""
    spec = TaskSpec(id="t1", title="t1", skills={"work": 0.5}, input=1)
    return [
        Event(
            seq=7,
            ts=1.7e9,
            kind="task.done",
            task_id="t1",
            agent_id="a1",
            attempt=1,
            state="done",
            message="done by a1",
            data={"output": 1, "why": [0.5, "x"]},
        ),
        Assignment(task_id="t1", attempt=1, spec=spec, stall_timeout=30.0),
        Accept(task_id="t1", attempt=1, agent_id="a1"),
        Progress(task_id="t1", attempt=1, agent_id="a1", fraction=0.5, ts=1.7e9),
        Result(task_id="t1", attempt=1, agent_id="a1", session="s1", output=1, duration=0.001),
        ResultAck(task_id="t1", attempt=1, accepted=True, state=TaskState.DONE),
        Heartbeat(
            agent_id="a1", session="s1", ts=1.7e9, running=[TaskRef(task_id="t1", attempt=1)]
        ),
        SubmitTasks(tasks=[spec.model_copy(update={"id": f"t{i}"}) for i in range(20)]),
        Submitted(ids=[f"t{i}" for i in range(500)]),
    ]


def per_call(fn: Callable[[], Any], n: int) -> float:
    """CPU seconds per call of ``fn``, over ``n`` calls."""
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


class PublishSink:
    """The hub's side of the board as far as events go: rows dropped, events encoded."""

    def write(self, row: Change) -> None:
        pass

    def publish(self, event: Event) -> None:
        encode(event)

    def send_cancel(self, agent_id: str, message: Cancel) -> None:
        pass

    def wake(self) -> None:
        pass

    def judge(self, task_id: str, attempt: int, step: ValidationStep) -> None:
        pass

    def plan(self, goal_id: str, feedback: str) -> None:
        pass


def _validated_emit() -> None:
    """The reference: a validated ``Event``, its row's data and its plain encoding."""
    data: dict[str, Any] = {"why": "matched", "score": 0.75}
    event = Event(
        seq=1,
        ts=time.time(),
        kind="task.assigned",
        task_id="t1",
        agent_id="a1",
        attempt=1,
        state="assigned",
        message="offered to a1",
        data=data,
    )
    dumps(event.data)
    event.model_dump_json().encode()


def _plain_encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def _plain(model: type[BaseModel], data: bytes) -> BaseModel:
    return model.model_validate_json(data)


def _validated_wire(s: Scored) -> CandidateScore:
    """The reference: a validated ``CandidateScore`` of the same rounded parts."""
    return CandidateScore(
        agent_id=s.agent_id,
        score=round(s.score, 6),
        skill=round(s.skill, 6),
        load=round(s.load, 6),
        reliability=round(s.reliability, 6),
        cost=round(s.cost, 6),
    )


def pairs() -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(measure, codec call, plain pydantic call)."""
    out: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    for message in samples():
        model = type(message)
        data = encode(message)
        if data != message.model_dump_json().encode():
            raise RuntimeError(f"encode differs from pydantic for {model.__name__}")
        name = model.__name__
        out.append((f"encode {name}", partial(encode, message), partial(_plain_encode, message)))
        out.append((f"decode {name}", partial(decode, data, model), partial(_plain, model, data)))
    journal = Journal("default", PublishSink())

    def emit() -> None:
        journal.emit(
            "task.assigned",
            task_id="t1",
            agent_id="a1",
            attempt=1,
            message="offered to a1",
            data={"why": "matched", "score": 0.75},
        )

    out.append(("Journal.emit", emit, _validated_emit))
    scored = Scored(0.912345678, "a1", 0.8, 0.5, 0.987654321, 0.25)
    out.append(("Scored.wire", scored.wire, partial(_validated_wire, scored)))
    return out


def measure(quick: bool) -> list[tuple[str, float, float, float]]:
    """(measure, codec µs per call, pydantic µs per call, ratio): the least time of the
    rounds (the figure least disturbed by other work on the machine) and the median of
    each round's ratio (the two calls measured one right after the other)."""
    n = 200 if quick else 1000
    rows = []
    for name, ours, plain in pairs():
        a: list[float] = []
        b: list[float] = []
        per_call(ours, n // 5)  # warm
        per_call(plain, n // 5)
        for i in range(3 if quick else ROUNDS):
            if i % 2:
                b.append(per_call(plain, n))
                a.append(per_call(ours, n))
            else:
                a.append(per_call(ours, n))
                b.append(per_call(plain, n))
        ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
        rows.append((name, 1e6 * min(a), 1e6 * min(b), ratio))
    return rows


async def run(quick: bool) -> list[Row]:
    """The scenario's rows (µs per call, baseline: plain pydantic)."""
    return [
        Row(S, name, ours, "µs", plain, "pydantic", ratio=ratio)
        for name, ours, plain, ratio in measure(quick)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls, a smoke run")
    args = parser.parse_args(argv)
    print(f"{'measure':<22} {'codec µs':>9} {'pydantic µs':>12} {'ratio':>7}")
    for name, ours, plain, ratio in measure(args.quick):
        print(f"{name:<22} {ours:9.2f} {plain:12.2f} {ratio:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
