"""The board: every rule of the hub, driven directly (no bus, no store).

The board's outputs go to ``RecordingSink``, a small test double of the hub's side of the
``Sink`` protocol that keeps what it is given so the tests can look at it.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from clawhub.board import Board, Offer
from clawhub.board.records import AgentRecord, TaskRecord
from clawhub.settings import HubSettings
from clawhub.store import AgentRow, EventRow, Row, TaskRow
from clawhub.store.mapping import agent_records, agent_row, task_records, task_row
from protocols import (
    AgentProfile,
    AttemptInfo,
    Cancel,
    Constraints,
    Deregister,
    ErrorCode,
    Event,
    Heartbeat,
    Progress,
    ProtocolError,
    Register,
    Result,
    ResultAck,
    TaskRef,
    TaskSpec,
    TaskState,
    Timeouts,
    encode,
)

S = TaskState
GROUP = "g1"
BACKOFF = 0.5


StoredRow = TaskRow | AgentRow | EventRow
_MODELS: dict[str, type[StoredRow]] = {
    str(model.__tablename__): model for model in (TaskRow, AgentRow, EventRow)
}


def as_row(row: Row) -> StoredRow:
    """The row model of a write (the board may hand out models or plain table + values)."""
    if isinstance(row, TaskRow | AgentRow | EventRow):
        return row
    table: str = getattr(row, "table")  # noqa: B009
    values: dict[str, Any] = getattr(row, "values")  # noqa: B009
    return _MODELS[table](**values)


class RecordingSink:
    """Keeps every row, event, cancel and wake-up the board hands out."""

    def __init__(self) -> None:
        self.rows: list[StoredRow] = []
        self.events: list[Event] = []
        self.cancels: list[tuple[str, Cancel]] = []
        self.wakes = 0

    def write(self, row: Row) -> None:
        self.rows.append(as_row(row))

    def publish(self, event: Event) -> None:
        # the board builds its events without validation (``protocols._base.trusted``)
        validated = Event(**event.model_dump(exclude={"type"}))
        assert validated == event, event
        assert encode(validated) == encode(event), event
        assert validated.model_fields_set == event.model_fields_set, event
        self.events.append(event)

    def send_cancel(self, agent_id: str, message: Cancel) -> None:
        self.cancels.append((agent_id, message))

    def wake(self) -> None:
        self.wakes += 1

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def task_rows(self) -> dict[str, TaskRow]:
        """The last row written for each task."""
        return {r.id: r for r in self.rows if isinstance(r, TaskRow)}

    def agent_rows(self) -> dict[str, AgentRow]:
        """The last row written for each participant."""
        return {r.id: r for r in self.rows if isinstance(r, AgentRow)}

    def event_rows(self) -> list[EventRow]:
        return [r for r in self.rows if isinstance(r, EventRow)]


def settings(tmp_path: Path, **overrides: Any) -> HubSettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "heartbeat_interval": 1.0,
        "missed_beats": 3,
        "accept_timeout": 1.5,
        "stall_timeout": 30.0,
        "decline_backoff": BACKOFF,
    }
    values.update(overrides)
    return HubSettings(**values)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def board(tmp_path: Path, sink: RecordingSink) -> Board:
    return Board(GROUP, settings(tmp_path), sink, "hub-test")


def register(
    board: Board,
    agent_id: str,
    *,
    skills: dict[str, float] | None = None,
    session: str = "s1",
    running: list[TaskRef] | None = None,
    **fields: Any,
) -> None:
    profile = AgentProfile(
        id=agent_id,
        name=agent_id,
        skills={"python": 0.8} if skills is None else skills,
        **fields,
    )
    board.register(Register(profile=profile, session=session, running=running or []))


def task(task_id: str, **fields: Any) -> TaskSpec:
    values: dict[str, Any] = {"id": task_id, "title": task_id, "skills": {"python": 0.5}}
    values.update(fields)
    return TaskSpec(**values)


def offers(board: Board, now: float | None = None) -> list[Offer]:
    return board.next_offers(time.monotonic() if now is None else now)


def offer_one(board: Board) -> Offer:
    got = offers(board)
    assert len(got) == 1, got
    return got[0]


def start(board: Board, task_id: str) -> Offer:
    """Offer the task (it must be the only one offered) and have its agent accept."""
    offer = offer_one(board)
    assert offer.task.id == task_id
    board.offer_accepted(task_id, offer.attempt, offer.agent_id)
    assert board.tasks[task_id].state is S.RUNNING
    return offer


def result(
    board: Board,
    offer: Offer,
    *,
    ok: bool = True,
    output: Any = None,
    agent_id: str | None = None,
    attempt: int | None = None,
    session: str = "s1",
) -> ResultAck:
    return board.result(
        Result(
            task_id=offer.task.id,
            attempt=offer.attempt if attempt is None else attempt,
            agent_id=offer.agent_id if agent_id is None else agent_id,
            session=session,
            ok=ok,
            output=output,
            error=None if ok else "boom",
        )
    )


def refused(code: ErrorCode) -> Any:
    return pytest.raises(ProtocolError, match=f"^{code.value}: ")


# ---------------------------------------------------------------- submit


def test_submit_a_graph(board: Board, sink: RecordingSink) -> None:
    ids = board.submit([task("a"), task("b", depends_on=["a"]), task("c", depends_on=["a", "b"])])
    assert ids == ["a", "b", "c"]
    states = {i: board.tasks[i].state for i in ids}
    assert states == {"a": S.READY, "b": S.PENDING, "c": S.PENDING}
    # one event each; a task with nothing to wait for is ready in the same step
    assert [(e.kind, e.task_id, e.state) for e in sink.events] == [
        ("task.submitted", "a", "ready"),
        ("task.submitted", "b", "pending"),
        ("task.submitted", "c", "pending"),
    ]
    rows = sink.task_rows()
    assert {i: rows[i].state for i in ids} == {"a": "ready", "b": "pending", "c": "pending"}
    seqs = [e.seq for e in sink.event_rows()]
    assert seqs == list(range(1, len(seqs) + 1))

    register(board, "w1")
    off_a = start(board, "a")
    assert off_a.dependency_outputs == {}
    ack = result(board, off_a, output={"x": 1})
    assert ack.accepted
    assert ack.state is S.DONE
    assert board.tasks["b"].state is S.READY
    assert board.tasks["c"].state is S.PENDING  # still waits for b

    off_b = start(board, "b")
    assert off_b.dependency_outputs == {"a": {"x": 1}}
    result(board, off_b, output=[2])
    off_c = start(board, "c")
    assert off_c.dependency_outputs == {"a": {"x": 1}, "b": [2]}


def test_submit_orders_a_graph_given_dependents_first(board: Board) -> None:
    ids = board.submit([task("late", depends_on=["early"]), task("early")])
    assert ids == ["late", "early"]
    assert board.tasks["early"].state is S.READY
    assert board.tasks["late"].state is S.PENDING
    assert board.tasks["early"].seq < board.tasks["late"].seq
    assert board.tasks["early"].dependents == ["late"]


def test_submit_generates_ids(board: Board) -> None:
    ids = board.submit([TaskSpec(title="x"), TaskSpec(title="y")])
    assert len(set(ids)) == 2
    for i in ids:
        assert i.startswith("t-")
        assert board.tasks[i].spec.id == i


def test_depending_on_a_known_done_task_is_ready_at_once(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    result(board, start(board, "a"), output="out")
    board.submit([task("b", depends_on=["a"])])
    assert board.tasks["b"].state is S.READY
    assert offer_one(board).dependency_outputs == {"a": "out"}


def test_depending_on_a_known_failed_task_fails_at_once(board: Board) -> None:
    board.submit([task("a")])
    board.cancel_task("a", "no")
    board.submit([task("b", depends_on=["a"])])
    rec = board.tasks["b"]
    assert rec.state is S.FAILED
    assert rec.error == "dependency a cancelled"
    assert "b" not in board.state.ready


@pytest.mark.parametrize(
    ("specs", "code", "words"),
    [
        ([task("a"), task("a")], ErrorCode.CONFLICT, "already exists"),
        ([task("known")], ErrorCode.CONFLICT, "already exists"),
        ([task("a", depends_on=["ghost"])], ErrorCode.INVALID, "unknown task ghost"),
        ([task("a", depends_on=["a"])], ErrorCode.INVALID, "depends on itself"),
        (
            [task("a", depends_on=["c"]), task("b", depends_on=["a"]), task("c", depends_on=["b"])],
            ErrorCode.INVALID,
            "cycle",
        ),
        (
            [task("a"), task("b", output_schema={"type": "no-such-type"})],
            ErrorCode.INVALID,
            "invalid output_schema",
        ),
    ],
    ids=["duplicate-in-batch", "duplicate-known", "unknown-dep", "self-dep", "cycle", "schema"],
)
def test_bad_batches_are_refused_whole(
    board: Board, sink: RecordingSink, specs: list[TaskSpec], code: ErrorCode, words: str
) -> None:
    board.submit([task("known")])
    before_tasks = dict(board.tasks)
    before_rows, before_events = len(sink.rows), len(sink.events)
    with refused(code) as info:
        board.submit(specs)
    assert words in info.value.message
    assert board.tasks == before_tasks
    assert len(sink.rows) == before_rows
    assert len(sink.events) == before_events
    assert list(board.state.ready) == ["known"]
    # the refused ids are still free
    board.submit([task("a"), task("b")])
    assert board.tasks["a"].state is S.READY


# ---------------------------------------------------------------- offers


def test_next_offers_respects_capacity(board: Board) -> None:
    register(board, "w1", capacity=2)
    board.submit([task("a"), task("b"), task("c")])
    first = offers(board)
    assert [o.task.id for o in first] == ["a", "b"]
    assert board.agents["w1"].load == 2
    assert offers(board) == []
    assert board.tasks["c"].state is S.READY
    board.offer_accepted("a", first[0].attempt, "w1")
    result(board, first[0])
    again = offers(board)
    assert [o.task.id for o in again] == ["c"]


def test_next_offers_takes_priority_then_submission_order(board: Board) -> None:
    register(board, "w1", capacity=1)
    board.submit([task("low", priority=-1), task("mid"), task("high", priority=5), task("mid2")])
    order = []
    for _ in range(4):
        offer = offer_one(board)
        order.append(offer.task.id)
        board.offer_accepted(offer.task.id, offer.attempt, "w1")
        result(board, offer)
    assert order == ["high", "mid", "mid2", "low"]


def test_no_offer_without_a_qualified_free_participant(board: Board) -> None:
    board.submit([task("a", skills={"rust": 0.5})])
    assert offers(board) == []
    register(board, "py", skills={"python": 1.0})
    register(board, "weak", skills={"rust": 0.2})
    assert offers(board) == []
    register(board, "rusty", skills={"rust": 0.9})
    assert offer_one(board).agent_id == "rusty"


def test_offer_carries_timeouts(board: Board) -> None:
    register(board, "w1", capacity=2)
    board.submit([task("a"), task("b", timeouts=Timeouts(accept=0.2, stall=3, run=7))])
    by_task = {o.task.id: o for o in offers(board)}
    assert (by_task["a"].accept_timeout, by_task["a"].stall_timeout) == (1.5, 30.0)
    assert by_task["a"].run_timeout is None
    b = by_task["b"]
    assert (b.accept_timeout, b.stall_timeout, b.run_timeout) == (0.2, 3, 7)
    rec = board.tasks["b"]
    assert rec.state is S.ASSIGNED
    assert rec.attempt == 1
    assert rec.assigned_to == "w1"
    assert rec.history[-1].outcome == "offered"
    assert rec.history[-1].why
    assert rec.history[-1].why[0].agent_id == "w1"


def test_decline_goes_to_the_next_candidate(board: Board, sink: RecordingSink) -> None:
    register(board, "best", skills={"python": 1.0})
    register(board, "next", skills={"python": 0.6})
    board.submit([task("a")])
    first = offer_one(board)
    assert first.agent_id == "best"
    board.offer_refused("a", first.attempt, "best", "declined", "busy")
    rec = board.tasks["a"]
    assert rec.state is S.READY
    assert rec.failures == 0  # declines do not count
    assert rec.history[-1].outcome == "declined"
    assert board.agents["best"].load == 0
    assert sink.cancels == []  # a decline needs no cancel
    second = offer_one(board)
    assert second.agent_id == "next"
    assert second.attempt == 2


def test_no_reply_sends_a_cancel(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = offer_one(board)
    board.offer_refused("a", offer.attempt, "w1", "no_reply", "silence")
    assert board.tasks["a"].history[-1].outcome == "no_reply"
    assert [(a, c.task_id, c.attempt) for a, c in sink.cancels] == [("w1", "a", 1)]


def test_all_declined_backs_off(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = offer_one(board)
    board.offer_refused("a", offer.attempt, "w1", "declined", "busy")
    now = time.monotonic()
    assert board.next_offers(now) == []
    rec = board.tasks["a"]
    assert rec.not_before == pytest.approx(now + BACKOFF)
    assert board.next_retry() == rec.not_before
    assert board.next_offers(now + BACKOFF / 2) == []
    again = board.next_offers(now + BACKOFF + 0.01)
    assert [(o.task.id, o.agent_id, o.attempt) for o in again] == [("a", "w1", 2)]


def test_accept_from_a_stranger_changes_nothing(board: Board) -> None:
    register(board, "w1")
    register(board, "w2")
    board.submit([task("a")])
    offer = offer_one(board)
    other = "w2" if offer.agent_id == "w1" else "w1"
    board.offer_accepted("a", offer.attempt, other)
    board.offer_accepted("a", offer.attempt + 1, offer.agent_id)
    assert board.tasks["a"].state is S.ASSIGNED


# ---------------------------------------------------------------- results


def test_good_result_finishes_the_task(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a", output_schema={"type": "object", "required": ["n"]})])
    offer = start(board, "a")
    ack = result(board, offer, output={"n": 3})
    assert (ack.accepted, ack.state, ack.duplicate) == (True, S.DONE, False)
    rec = board.tasks["a"]
    assert rec.state is S.DONE
    assert rec.output == {"n": 3}
    assert rec.assigned_to is None
    assert rec.history[-1].outcome == "done"
    agent = board.agents["w1"]
    assert (agent.load, agent.completed) == (0, 1)
    assert agent.reliability > 0.9
    assert sink.task_rows()["a"].state == "done"
    assert "task.done" in sink.kinds()


def test_good_result_persists_the_agents_record(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a")])
    result(board, start(board, "a"), output=1)
    row = sink.agent_rows()["w1"]
    assert row.completed == 1
    assert row.reliability == pytest.approx(board.agents["w1"].reliability)


def test_result_overtaking_the_accept_is_taken(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = offer_one(board)
    ack = result(board, offer, output="x")
    assert ack.state is S.DONE
    assert board.tasks["a"].history[-1].started_at is not None


def test_output_failing_the_schema_is_rejected_and_retried_elsewhere(
    board: Board, sink: RecordingSink
) -> None:
    register(board, "best", skills={"python": 1.0})
    register(board, "other", skills={"python": 0.6})
    board.submit([task("a", output_schema={"type": "integer"})])
    offer = start(board, "a")
    assert offer.agent_id == "best"
    ack = result(board, offer, output="not a number")
    assert not ack.accepted
    assert ack.state is S.READY
    assert "output_schema" in ack.reason
    rec = board.tasks["a"]
    assert rec.failures == 1
    assert rec.output is None
    assert rec.excluded == {"best"}
    assert rec.history[-1].outcome == "rejected"
    assert "task.rejected" in sink.kinds()
    assert board.agents["best"].failed == 1
    retry = offer_one(board)
    assert retry.agent_id == "other"
    assert retry.attempt == 2
    assert result(board, retry, output=7, attempt=2).state is S.DONE


def test_rejected_task_goes_back_to_the_only_qualified_agent(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a", output_schema={"type": "integer"})])
    result(board, start(board, "a"), output="no")
    retry = offer_one(board)
    assert (retry.agent_id, retry.attempt) == ("w1", 2)


def test_failed_attempts_retry_then_fail_with_history(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a", max_attempts=2)])
    first = start(board, "a")
    ack = result(board, first, ok=False)
    assert (ack.accepted, ack.state) == (False, S.READY)
    assert "boom" in ack.reason
    assert board.tasks["a"].failures == 1
    second = start(board, "a")
    assert second.attempt == 2
    ack = result(board, second, ok=False)
    assert ack.state is S.FAILED
    rec = board.tasks["a"]
    assert rec.failures == 2
    assert rec.error is not None
    assert "2 failed attempts" in rec.error
    assert [(h.attempt, h.agent_id, h.outcome) for h in rec.history] == [
        (1, "w1", "error"),
        (2, "w1", "error"),
    ]
    assert sink.task_rows()["a"].state == "failed"
    assert "a" not in board.state.ready


def test_stale_attempt_result_is_refused(board: Board, sink: RecordingSink) -> None:
    register(board, "w1", skills={"python": 1.0})
    register(board, "w2", skills={"python": 0.6})
    board.submit([task("a")])
    first = start(board, "a")
    assert first.agent_id == "w1"
    board.agent_lost("w1", "test")
    second = start(board, "a")
    assert (second.agent_id, second.attempt) == ("w2", 2)
    rows_before = len(sink.rows)
    with refused(ErrorCode.STALE_ATTEMPT) as info:
        result(board, first, output="late")
    assert "attempt 1" in info.value.message
    rec = board.tasks["a"]
    assert (rec.state, rec.attempt, rec.assigned_to, rec.output) == (S.RUNNING, 2, "w2", None)
    assert len(sink.rows) == rows_before
    assert result(board, second, output="fresh").state is S.DONE
    assert board.tasks["a"].output == "fresh"


def test_result_from_a_non_holder_is_refused(board: Board) -> None:
    register(board, "w1", skills={"python": 1.0})
    register(board, "w2", skills={"python": 0.6})
    board.submit([task("a")])
    offer = start(board, "a")
    with refused(ErrorCode.NOT_HOLDER):
        result(board, offer, agent_id="w2")
    rec = board.tasks["a"]
    assert (rec.state, rec.assigned_to) == (S.RUNNING, "w1")
    assert result(board, offer).state is S.DONE


def test_result_from_an_unknown_agent_or_for_an_unknown_task(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = start(board, "a")
    with refused(ErrorCode.UNKNOWN_AGENT):
        result(board, offer, agent_id="nobody")
    with refused(ErrorCode.UNKNOWN_TASK):
        board.result(Result(task_id="zzz", attempt=1, agent_id="w1", session="s1"))
    assert board.tasks["a"].state is S.RUNNING


def test_result_from_another_session_is_refused(board: Board) -> None:
    register(board, "w1", session="s1")
    board.submit([task("a")])
    offer = start(board, "a")
    with refused(ErrorCode.WRONG_SESSION):
        register(board, "w1", session="s2")
    with refused(ErrorCode.WRONG_SESSION):
        result(board, offer, session="s2")
    assert board.tasks["a"].state is S.RUNNING


def test_duplicate_result_gets_a_duplicate_ack(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = start(board, "a")
    result(board, offer, output=1)
    ack = result(board, offer, output=2)
    assert (ack.duplicate, ack.accepted, ack.state) == (True, True, S.DONE)
    assert board.tasks["a"].output == 1
    assert board.agents["w1"].completed == 1


def test_duplicate_of_a_rejected_result_says_so(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a", output_schema={"type": "integer"})])
    offer = start(board, "a")
    result(board, offer, output="x")
    ack = result(board, offer, output="x")
    assert (ack.duplicate, ack.accepted, ack.state) == (True, False, S.READY)
    assert board.tasks["a"].failures == 1


def test_an_accept_overtaken_by_its_result_stops_nothing(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = offer_one(board)
    ack = result(board, offer, output=1)  # the result arrives before the accept reply
    assert (ack.accepted, ack.state) == (True, S.DONE)
    board.offer_accepted("a", offer.attempt, "w1")
    assert sink.cancels == []
    assert board.tasks["a"].history[-1].outcome == "done"


# ---------------------------------------------------------------- cancel and cascades


def test_cancel_a_ready_task(board: Board, sink: RecordingSink) -> None:
    board.submit([task("a")])
    rec = board.cancel_task("a", "changed my mind")
    assert rec.state is S.CANCELLED
    assert rec.error == "changed my mind"
    assert sink.cancels == []
    assert "a" not in board.state.ready
    assert sink.task_rows()["a"].state == "cancelled"


def test_cancel_a_held_task_tells_the_holder(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = start(board, "a")
    board.cancel_task("a", "")
    rec = board.tasks["a"]
    assert rec.state is S.CANCELLED
    assert rec.history[-1].outcome == "cancelled"
    assert [(a, c.task_id, c.attempt) for a, c in sink.cancels] == [("w1", "a", offer.attempt)]
    assert board.agents["w1"].load == 0
    with refused(ErrorCode.STALE_ATTEMPT):
        result(board, offer, output=1)


@pytest.mark.parametrize("final", ["done", "cancelled"])
def test_cancel_a_finished_task_is_a_conflict(board: Board, final: str) -> None:
    register(board, "w1")
    board.submit([task("a")])
    if final == "done":
        result(board, start(board, "a"))
    else:
        board.cancel_task("a", "")
    with refused(ErrorCode.CONFLICT):
        board.cancel_task("a", "again")
    assert board.tasks["a"].state.value == final
    with refused(ErrorCode.UNKNOWN_TASK):
        board.cancel_task("nope", "")


def test_dependency_failure_cascades(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit(
        [
            task("a", max_attempts=1),
            task("b", depends_on=["a"]),
            task("c", depends_on=["b"]),
            task("side"),
        ]
    )
    offer = start(board, "a")
    result(board, offer, ok=False)
    assert board.tasks["a"].state is S.FAILED
    assert board.tasks["b"].state is S.FAILED
    assert board.tasks["b"].error == "dependency a failed"
    assert board.tasks["c"].state is S.FAILED
    assert board.tasks["c"].error == "dependency b failed"
    assert board.tasks["side"].state is S.READY
    rows = sink.task_rows()
    assert (rows["b"].state, rows["c"].state) == ("failed", "failed")


def test_cancel_cascades_to_dependents(board: Board) -> None:
    board.submit([task("a"), task("b", depends_on=["a"])])
    board.cancel_task("a", "")
    assert board.tasks["b"].state is S.FAILED
    assert board.tasks["b"].error == "dependency a cancelled"


# ---------------------------------------------------------------- participants


def test_agent_lost_revokes_excludes_and_drops_reliability(
    board: Board, sink: RecordingSink
) -> None:
    register(board, "w1", skills={"python": 1.0}, capacity=2)
    register(board, "w2", skills={"python": 0.6})
    board.submit([task("run"), task("offer")])
    got = offers(board)
    assert {(o.task.id, o.agent_id) for o in got} == {("run", "w1"), ("offer", "w1")}
    run = next(o for o in got if o.task.id == "run")
    board.offer_accepted("run", run.attempt, "w1")
    before = board.agents["w1"].reliability

    board.agent_lost("w1", "gone")
    agent = board.agents["w1"]
    assert agent.state == "lost"
    assert agent.load == 0
    assert agent.reliability < before
    assert "w1" not in board.index.candidates(["python"])
    for tid in ("run", "offer"):
        rec = board.tasks[tid]
        assert rec.state is S.READY
        assert rec.excluded == {"w1"}
        assert rec.history[-1].outcome == "lost"
    assert board.tasks["run"].failures == 1  # it was running: counts
    assert board.tasks["offer"].failures == 0  # only offered: does not
    assert {(a, c.task_id) for a, c in sink.cancels} == {("w1", "run"), ("w1", "offer")}
    assert sink.agent_rows()["w1"].state == "lost"
    lost = [e for e in sink.events if e.kind == "agent.lost"]
    assert len(lost) == 1
    revoked = lost[0].data["revoked"]
    assert isinstance(revoked, list)
    assert sorted(str(r) for r in revoked) == ["offer", "run"]
    # the work goes to the other participant
    assert offer_one(board).agent_id == "w2"


def test_agent_lost_holding_nothing_still_drops_reliability(board: Board) -> None:
    register(board, "w1")
    before = board.agents["w1"].reliability
    board.agent_lost("w1", "gone")
    assert board.agents["w1"].reliability < before
    board.agent_lost("w1", "again")  # lost twice: no further change
    assert board.agents["w1"].reliability == pytest.approx(before * 0.5)


def test_deregister_returns_work_without_counting(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a")])
    start(board, "a")
    with refused(ErrorCode.WRONG_SESSION):
        board.deregister(Deregister(agent_id="w1", session="other"))
    with refused(ErrorCode.UNKNOWN_AGENT):
        board.deregister(Deregister(agent_id="ghost", session="s1"))
    assert board.tasks["a"].state is S.RUNNING
    board.deregister(Deregister(agent_id="w1", session="s1", reason="bye"))
    rec = board.tasks["a"]
    assert (rec.state, rec.failures, rec.excluded) == (S.READY, 0, set())
    assert rec.history[-1].outcome == "revoked"
    assert board.agents["w1"].state == "left"
    assert len(board.index) == 0


def test_register_twice_with_another_live_session(board: Board) -> None:
    register(board, "w1", session="s1")
    with refused(ErrorCode.WRONG_SESSION):
        register(board, "w1", session="s2", skills={"go": 1.0})
    agent = board.agents["w1"]
    assert agent.session == "s1"
    assert "go" not in agent.profile.skills


def test_register_with_a_new_session_after_the_old_one_went_quiet(
    board: Board, sink: RecordingSink
) -> None:
    register(board, "w1", session="s1")
    board.submit([task("a")])
    start(board, "a")
    board.agents["w1"].last_beat -= 100  # silent for longer than lost_after
    register(board, "w1", session="s2")
    assert board.agents["w1"].session == "s2"
    rec = board.tasks["a"]
    assert rec.state is S.READY
    assert rec.history[-1].outcome == "lost"
    assert ("w1", "a") in {(a, c.task_id) for a, c in sink.cancels}


def test_rejoin_with_the_same_session_re_attaches(board: Board, sink: RecordingSink) -> None:
    register(board, "w1", capacity=3)
    board.submit([task("a")])
    offer = start(board, "a")
    board.agents["w1"].held.clear()  # as if the hub had forgotten who holds what
    running = [
        TaskRef(task_id="a", attempt=offer.attempt),
        TaskRef(task_id="a", attempt=offer.attempt + 5),
        TaskRef(task_id="unknown", attempt=1),
    ]
    ack = board.register(
        Register(profile=board.agents["w1"].profile.model_copy(), session="s1", running=running)
    )
    assert [(r.task_id, r.attempt) for r in ack.revoked] == [
        ("a", offer.attempt + 5),
        ("unknown", 1),
    ]
    assert board.agents["w1"].held == {"a": offer.attempt}
    assert board.tasks["a"].state is S.RUNNING
    assert sink.kinds().count("agent.rejoined") == 1
    assert ack.heartbeat_interval == 1.0
    assert ack.missed_beats == 3


def test_heartbeat_refusals(board: Board) -> None:
    with refused(ErrorCode.UNKNOWN_AGENT):
        board.heartbeat(Heartbeat(agent_id="ghost", session="s1", ts=time.time()))
    register(board, "w1")
    with refused(ErrorCode.WRONG_SESSION):
        board.heartbeat(Heartbeat(agent_id="w1", session="s9", ts=time.time()))


def test_heartbeat_reconciles_what_the_agent_runs(board: Board, sink: RecordingSink) -> None:
    register(board, "w1", capacity=2)
    board.submit([task("a"), task("b")])
    got = {o.task.id: o for o in offers(board)}
    for o in got.values():
        board.offer_accepted(o.task.id, o.attempt, "w1")
    board.cancel_task("b", "")
    sink.cancels.clear()
    board.heartbeat(
        Heartbeat(
            agent_id="w1",
            session="s1",
            ts=time.time(),
            running=[
                TaskRef(task_id="a", attempt=got["a"].attempt),
                TaskRef(task_id="b", attempt=got["b"].attempt),
                TaskRef(task_id="zzz", attempt=4),
            ],
        )
    )
    assert sorted((a, c.task_id, c.attempt) for a, c in sink.cancels) == [
        ("w1", "b", got["b"].attempt),
        ("w1", "zzz", 4),
    ]
    assert board.tasks["a"].state is S.RUNNING


def test_heartbeat_brings_a_lost_agent_back(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.agent_lost("w1", "quiet")
    board.submit([task("a")])
    assert offers(board) == []
    board.heartbeat(Heartbeat(agent_id="w1", session="s1", ts=time.time()))
    assert board.agents["w1"].state == "online"
    assert "agent.back" in sink.kinds()
    assert offer_one(board).agent_id == "w1"


def test_a_late_heartbeat_does_not_revive_a_departed_agent(board: Board) -> None:
    register(board, "w1")
    board.deregister(Deregister(agent_id="w1", session="s1", reason="bye"))
    with contextlib.suppress(ProtocolError):
        board.heartbeat(Heartbeat(agent_id="w1", session="s1", ts=time.time()))
    board.submit([task("a")])
    assert board.agents["w1"].state == "left"
    assert offers(board) == []


# ---------------------------------------------------------------- progress


def test_progress_is_recorded_and_resets_the_stall_timer(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("a", timeouts=Timeouts(stall=5))])
    offer = start(board, "a")
    rec = board.tasks["a"]
    rec.last_progress -= 100
    board.progress(
        Progress(
            task_id="a",
            attempt=offer.attempt,
            agent_id="w1",
            fraction=0.4,
            message="hi",
            ts=time.time(),
        )
    )
    assert (rec.progress, rec.progress_message) == (0.4, "hi")
    board.sweep()
    assert rec.state is S.RUNNING
    progress_events = [e for e in sink.events if e.kind == "task.progress"]
    assert progress_events
    assert progress_events[-1].seq == 0  # published, not logged
    board.progress(
        Progress(
            task_id="a",
            attempt=offer.attempt,
            agent_id="w1",
            message="line",
            log=True,
            ts=time.time(),
        )
    )
    assert any(r.kind == "task.log" and r.message == "line" for r in sink.event_rows())
    assert rec.progress_message == "hi"


def test_progress_of_a_stale_attempt_or_unknown_task_is_refused(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a")])
    offer = start(board, "a")
    with refused(ErrorCode.STALE_ATTEMPT):
        board.progress(
            Progress(task_id="a", attempt=offer.attempt + 1, agent_id="w1", ts=time.time())
        )
    with refused(ErrorCode.UNKNOWN_TASK):
        board.progress(Progress(task_id="nope", attempt=1, agent_id="w1", ts=time.time()))


def test_progress_from_a_non_holder_is_not_holder(board: Board) -> None:
    register(board, "w1", skills={"python": 1.0})
    register(board, "w2", skills={"python": 0.6})
    board.submit([task("a")])
    offer = start(board, "a")
    with refused(ErrorCode.NOT_HOLDER):
        board.progress(Progress(task_id="a", attempt=offer.attempt, agent_id="w2", ts=time.time()))


# ---------------------------------------------------------------- the lease watcher


def test_sweep_revokes_a_stalled_attempt(board: Board, sink: RecordingSink) -> None:
    register(board, "w1", skills={"python": 1.0})
    register(board, "w2", skills={"python": 0.6})
    board.submit([task("a", timeouts=Timeouts(stall=0.5))])
    offer = start(board, "a")
    board.sweep()
    assert board.tasks["a"].state is S.RUNNING
    board.tasks["a"].last_progress -= 10
    board.sweep()
    rec = board.tasks["a"]
    assert rec.state is S.READY
    assert rec.failures == 1
    assert rec.excluded == {"w1"}
    assert rec.history[-1].outcome == "stalled"
    assert "stall timeout" in rec.history[-1].reason
    assert [(a, c.task_id, c.attempt) for a, c in sink.cancels] == [("w1", "a", offer.attempt)]
    assert board.agents["w1"].state == "online"  # only the attempt stalled
    assert board.agents["w1"].reliability < 0.9
    assert offer_one(board).agent_id == "w2"


def test_sweep_revokes_after_the_run_timeout(board: Board) -> None:
    register(board, "w1")
    board.submit([task("a", timeouts=Timeouts(run=0.5, stall=100))])
    start(board, "a")
    board.sweep()
    assert board.tasks["a"].state is S.RUNNING
    board.tasks["a"].started -= 10
    board.sweep()
    rec = board.tasks["a"]
    assert rec.state is S.READY
    assert rec.history[-1].outcome == "timed_out"
    assert rec.failures == 1


def test_sweep_fails_a_task_past_its_deadline(board: Board, sink: RecordingSink) -> None:
    register(board, "w1")
    board.submit([task("held", deadline=time.time() + 3600), task("queued", skills={"go": 1.0})])
    offer = start(board, "held")
    board.sweep()
    assert board.tasks["held"].state is S.RUNNING
    board.tasks["held"].spec.deadline = time.time() - 1
    board.tasks["queued"].spec.deadline = time.time() - 1
    board.state.deadlines["queued"] = board.tasks["queued"]
    board.sweep()
    held = board.tasks["held"]
    assert (held.state, held.error) == (S.FAILED, "deadline passed")
    assert held.history[-1].outcome == "timed_out"
    assert ("w1", "held", offer.attempt) in {(a, c.task_id, c.attempt) for a, c in sink.cancels}
    assert board.tasks["queued"].state is S.FAILED
    assert board.state.deadlines == {}


def test_submit_with_a_past_deadline_fails_on_the_next_sweep(board: Board) -> None:
    board.submit([task("a", deadline=time.time() - 1), task("b", depends_on=["a"])])
    a = board.tasks["a"]
    assert a.state.value == "ready"
    board.sweep()
    assert a.state is S.FAILED
    assert board.tasks["b"].state is S.FAILED


def test_sweep_loses_a_silent_agent(board: Board) -> None:
    register(board, "w1")
    register(board, "w2")
    board.submit([task("a", constraints=Constraints(agents=["w1"]))])
    start(board, "a")
    board.sweep()
    w1 = board.agents["w1"]
    assert w1.state == "online"
    w1.last_beat -= board.lost_after() + 1
    board.sweep()
    assert board.agents["w1"] is w1
    assert w1.info().state == "lost"
    assert board.agents["w2"].state == "online"
    assert board.tasks["a"].state is S.READY
    assert board.tasks["a"].history[-1].outcome == "lost"


def test_a_steadily_late_watcher_still_detects_a_silent_agent(tmp_path: Path) -> None:
    fast = settings(tmp_path, sweep_interval=0.01, heartbeat_interval=0.05, missed_beats=1)
    board = Board(GROUP, fast, RecordingSink(), "hub-test")
    register(board, "w1")
    board.sweep()
    assert board.agents["w1"].state == "online"
    for _ in range(5):  # the agent is silent and every sweep comes 0.1 s after the last
        time.sleep(0.1)
        board.sweep()
    assert board.agents["w1"].state == "lost"


# ---------------------------------------------------------------- recovery


def _profile(agent_id: str) -> AgentProfile:
    return AgentProfile(id=agent_id, name=agent_id, skills={"python": 0.8}, capacity=4)


def _rec(task_id: str, seq: int, state: TaskState, **fields: Any) -> TaskRecord:
    depends = fields.pop("depends_on", [])
    return TaskRecord(
        id=task_id,
        seq=seq,
        spec=task(task_id, depends_on=depends),
        state=state,
        created_at=1000.0 + seq,
        updated_at=1000.0 + seq,
        **fields,
    )


def _attempt(n: int, agent_id: str, outcome: Any) -> AttemptInfo:
    return AttemptInfo(attempt=n, agent_id=agent_id, outcome=outcome, offered_at=1000.0)


def test_load_restores_states_from_rows(tmp_path: Path) -> None:
    agents = [
        AgentRecord(profile=_profile("on"), session="s1"),
        AgentRecord(profile=_profile("gone"), session="s2", state="lost", reliability=0.5),
    ]
    recs = [
        _rec("done", 1, S.DONE, output={"v": 1}, attempt=1, history=[_attempt(1, "on", "done")]),
        _rec("ready", 2, S.READY),
        _rec(
            "assigned",
            3,
            S.ASSIGNED,
            attempt=1,
            assigned_to="on",
            history=[_attempt(1, "on", "offered")],
        ),
        _rec(
            "run-on",
            4,
            S.RUNNING,
            attempt=2,
            failures=1,
            assigned_to="on",
            history=[_attempt(1, "gone", "lost"), _attempt(2, "on", "running")],
            excluded={"gone"},
        ),
        _rec(
            "run-gone",
            5,
            S.RUNNING,
            attempt=1,
            assigned_to="gone",
            history=[_attempt(1, "gone", "running")],
        ),
        _rec("pending-ok", 6, S.PENDING, depends_on=["done"]),
        _rec("pending-wait", 7, S.PENDING, depends_on=["ready"]),
        _rec("cancelled", 8, S.CANCELLED, error="no"),
        _rec(
            "checking",
            9,
            S.VALIDATING,
            attempt=1,
            output="fine",
            history=[_attempt(1, "on", "running")],
        ),
    ]
    sink = RecordingSink()
    board = Board(GROUP, settings(tmp_path), sink, "hub-2")
    board.load(
        task_records(task_row(r, GROUP) for r in recs),
        agent_records(agent_row(a, GROUP) for a in agents),
        last_seq=41,
    )

    t = board.tasks
    assert t["done"].state is S.DONE
    assert t["done"].output == {"v": 1}
    assert t["cancelled"].state is S.CANCELLED
    assert t["ready"].state is S.READY
    # an offer died with the old hub: during the recovery grace its holder may still claim
    # it, and nothing is offered
    assert t["assigned"].state is S.ASSIGNED
    assert board.state.held_over == ["assigned"]
    assert offers(board) == []
    # running on an online holder: re-attached
    assert t["run-on"].state is S.RUNNING
    assert t["run-on"].excluded == {"gone"}
    assert board.agents["on"].held == {"run-on": 2, "assigned": 1}
    # running on a holder that is not online: revoked, counted
    assert t["run-gone"].state is S.READY
    assert t["run-gone"].failures == 1
    assert t["run-gone"].history[-1].outcome == "lost"
    assert t["pending-ok"].state is S.READY
    assert t["pending-wait"].state is S.PENDING
    # a result that was being checked is checked again
    assert (t["checking"].state, t["checking"].output) == (S.DONE, "fine")
    assert t["checking"].history[-1].outcome == "done"
    assert t["ready"].dependents == ["pending-wait"]

    # the event log continues where it stopped
    seqs = [r.seq for r in sink.event_rows()]
    assert seqs == list(range(42, 42 + len(seqs)))
    assert sink.events[-1].kind == "hub.recovered"
    # new tasks are numbered after the loaded ones
    board.submit([task("new")])
    assert board.tasks["new"].seq == 10
    # the grace passes unclaimed: offered again, no failure counted, holder told
    board.state.recovering_until -= 10
    board.sweep()
    assert t["assigned"].state is S.READY
    assert t["assigned"].failures == 0
    assert t["assigned"].history[-1].outcome == "revoked"
    assert ("on", "assigned") in {(a, c.task_id) for a, c in sink.cancels}
    assert board.agents["on"].held == {"run-on": 2}
    # the loaded online agent gets work
    assert {o.task.id for o in offers(board)} >= {"ready", "assigned"}
    assert board.agents["gone"].state == "lost"
    assert "gone" not in board.index.candidates([])


def test_after_a_takeover_a_participant_keeps_the_attempts_the_old_hub_did_not_record(
    tmp_path: Path,
) -> None:
    """The old hub died mid-offer: one offer it recorded (assigned), one it sent but never
    wrote (the task is ready in the store). The holders say in their next heartbeat that
    they run them, within the grace: they keep them, nothing is offered to anyone else,
    so nothing runs twice. A claim after the grace, or for another attempt, is cancelled."""
    agents = [AgentRecord(profile=_profile("on"), session="s1")]
    recs = [
        _rec(
            "offered",
            1,
            S.ASSIGNED,
            attempt=1,
            assigned_to="on",
            history=[_attempt(1, "on", "offered")],
        ),
        _rec("unwritten", 2, S.READY),
        _rec("stale", 3, S.READY, attempt=2, history=[_attempt(2, "x", "lost")]),
    ]
    sink = RecordingSink()
    board = Board(GROUP, settings(tmp_path), sink, "hub-2")
    board.load(
        task_records(task_row(r, GROUP) for r in recs),
        agent_records(agent_row(a, GROUP) for a in agents),
        last_seq=1,
    )
    assert offers(board) == []  # the grace: nothing goes out yet
    running = [
        TaskRef(task_id="offered", attempt=1),
        TaskRef(task_id="unwritten", attempt=1),
        TaskRef(task_id="stale", attempt=2),  # an attempt that already ended: not the next
    ]
    board.heartbeat(Heartbeat(agent_id="on", session="s1", ts=time.time(), running=running))
    t = board.tasks
    assert (t["offered"].state, t["offered"].assigned_to) == (S.RUNNING, "on")
    assert (t["unwritten"].state, t["unwritten"].attempt) == (S.RUNNING, 1)
    assert t["unwritten"].history[-1].agent_id == "on"
    assert t["stale"].state is S.READY
    assert {c.task_id for _, c in sink.cancels} == {"stale"}
    board.state.recovering_until -= 10
    board.sweep()  # the grace ends: what was claimed stays, the rest is offered
    assert t["offered"].state is S.RUNNING and t["unwritten"].state is S.RUNNING
    assert {o.task.id for o in offers(board)} == {"stale"}
    later = [TaskRef(task_id="stale", attempt=3)]  # after the grace a claim is refused
    board.heartbeat(Heartbeat(agent_id="on", session="s1", ts=time.time(), running=later))
    assert ("on", "stale") in {(a, c.task_id) for a, c in sink.cancels}


def test_load_round_trip_of_a_live_board(tmp_path: Path) -> None:
    sink1 = RecordingSink()
    first = Board(GROUP, settings(tmp_path), sink1, "hub-1")
    register(first, "w1", capacity=3)
    first.submit(
        [
            task("a", output_schema={"type": "integer"}),
            task("b", depends_on=["a"]),
            task("c"),
            task("d", skills={"go": 1.0}),
        ]
    )
    got = {o.task.id: o for o in offers(first)}
    first.offer_accepted("a", got["a"].attempt, "w1")
    result(first, got["a"], output="bad")  # rejected: a is ready again, failures 1
    first.offer_accepted("c", got["c"].attempt, "w1")
    before = {i: (r.state, r.attempt, r.failures, r.assigned_to) for i, r in first.tasks.items()}
    last_seq = max(r.seq for r in sink1.event_rows())

    sink2 = RecordingSink()
    second = Board(GROUP, settings(tmp_path), sink2, "hub-2")
    second.load(
        task_records(sink1.task_rows().values()),
        agent_records(sink1.agent_rows().values()),
        last_seq=last_seq,
    )
    after = {i: (r.state, r.attempt, r.failures, r.assigned_to) for i, r in second.tasks.items()}
    assert after == before
    assert second.tasks["a"].excluded == {"w1"}
    assert [h.outcome for h in second.tasks["a"].history] == ["rejected"]
    assert second.agents["w1"].held == {"c": got["c"].attempt}
    assert sink2.event_rows()[0].seq == last_seq + 1
    # the re-attached attempt can still finish
    ack = second.result(
        Result(task_id="c", attempt=got["c"].attempt, agent_id="w1", session="s1", output=5)
    )
    assert ack.state is S.DONE


def test_an_accept_for_a_withdrawn_offer_is_answered_with_a_cancel(
    board: Board, sink: RecordingSink
) -> None:
    register(board, "w1")
    board.submit([TaskSpec(id="a", title="a")])
    [offer] = board.next_offers(time.monotonic())
    board.cancel_task("a", "changed my mind")
    sink.cancels.clear()
    board.offer_accepted("a", offer.attempt, "w1")
    assert [(agent, c.task_id, c.reason) for agent, c in sink.cancels] == [
        ("w1", "a", "offer withdrawn")
    ]
    assert board.tasks["a"].state is TaskState.CANCELLED
