"""The durable store on SQLite and PostgreSQL, and a hub restarted on the same store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import hub_settings
from fakes import WAIT, FakeAgent, ask
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from clawhub.errors import StoreError
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import AgentRow, EventRow, Store, TaskRow
from protocols import (
    AgentProfile,
    CancelTask,
    ListTasks,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskSpec,
    TaskState,
    encode,
    subjects,
)

G = "g1"


def task_row(task_id: str, seq: int, **fields: Any) -> TaskRow:
    values: dict[str, Any] = {
        "group": G,
        "id": task_id,
        "seq": seq,
        "state": "ready",
        "spec": TaskSpec(id=task_id, title=task_id).model_dump_json(),
        "created_at": 100.0 + seq,
        "updated_at": 100.0 + seq,
    }
    values.update(fields)
    return TaskRow(**values)


def agent_row(agent_id: str, **fields: Any) -> AgentRow:
    values: dict[str, Any] = {
        "group": G,
        "id": agent_id,
        "profile": AgentProfile(id=agent_id, name=agent_id).model_dump_json(),
        "session": "s1",
        "state": "online",
    }
    values.update(fields)
    return AgentRow(**values)


def event_row(seq: int, kind: str, task_id: str | None = None, group: str = G) -> EventRow:
    return EventRow(group=group, seq=seq, ts=1000.0 + seq, kind=kind, task_id=task_id, data="{}")


# ---------------------------------------------------------------- rows


def test_round_trip_of_every_row(store: Store) -> None:
    t = task_row(
        "a",
        1,
        state="running",
        attempt=2,
        failures=1,
        assigned_to="w1",
        output='{"x":[1,2]}',
        error="once",
        excluded='["w0"]',
        history='[{"attempt":1}]',
    )
    a = agent_row("w1", reliability=0.42, completed=3, failed=2, last_seen=1234.5)
    e = EventRow(
        group=G,
        seq=1,
        ts=99.5,
        kind="task.running",
        task_id="a",
        agent_id="w1",
        attempt=2,
        state="running",
        message="héllo ✓",
        data='{"k":"v"}',
    )
    store.apply([t, a, e])
    assert [r.model_dump() for r in store.load_tasks(G)] == [t.model_dump()]
    assert [r.model_dump() for r in store.load_agents(G)] == [a.model_dump()]
    assert [r.model_dump() for r in store.events(G)] == [e.model_dump()]


def test_groups_are_kept_apart(store: Store) -> None:
    store.apply([task_row("a", 1), task_row("a", 1, group="other"), agent_row("w1")])
    store.apply([event_row(1, "x"), event_row(1, "x", group="other"), event_row(2, "y")])
    assert len(store.load_tasks(G)) == 1
    assert len(store.load_tasks("other")) == 1
    assert store.load_agents("other") == []
    assert store.last_event_seq(G) == 2
    assert store.last_event_seq("other") == 1
    assert store.last_event_seq("empty") == 0
    assert [e.seq for e in store.events("other")] == [1]


def test_upsert_overwrites(store: Store) -> None:
    store.apply([task_row("a", 1), agent_row("w1")])
    store.apply(
        [
            task_row("a", 1, state="done", attempt=1, output='"out"'),
            agent_row("w1", state="lost", reliability=0.1, session="s2"),
        ]
    )
    (t,) = store.load_tasks(G)
    assert (t.state, t.attempt, t.output) == ("done", 1, '"out"')
    (a,) = store.load_agents(G)
    assert (a.state, a.reliability, a.session) == ("lost", 0.1, "s2")


def test_the_last_write_of_a_row_in_a_batch_wins(store: Store) -> None:
    store.apply(
        [
            task_row("a", 1),
            agent_row("w1", state="online"),
            task_row("a", 1, state="assigned", attempt=1),
            agent_row("w1", state="lost"),
            task_row("a", 1, state="running", attempt=1),
        ]
    )
    assert [(t.id, t.state) for t in store.load_tasks(G)] == [("a", "running")]
    assert [(a.id, a.state) for a in store.load_agents(G)] == [("w1", "lost")]


def test_tasks_load_in_submission_order(store: Store) -> None:
    store.apply([task_row("c", 3), task_row("a", 1), task_row("b", 2)])
    assert [t.id for t in store.load_tasks(G)] == ["a", "b", "c"]


def test_events_filtered_by_task_and_kind_in_seq_order(store: Store) -> None:
    rows = [
        event_row(3, "task.done", "a"),
        event_row(1, "task.submitted", "a"),
        event_row(2, "task.submitted", "b"),
        event_row(5, "agent.lost"),
        event_row(4, "task.ready", "b"),
        event_row(6, "message.refused"),
    ]
    store.apply(rows)
    assert [e.seq for e in store.events(G)] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in store.events(G, task_id="a")] == [1, 3]
    assert [e.seq for e in store.events(G, kind="task.")] == [1, 2, 3, 4]
    assert [e.seq for e in store.events(G, kind="task.submitted")] == [1, 2]
    assert [e.seq for e in store.events(G, task_id="b", kind="task.ready")] == [4]
    assert [e.seq for e in store.events(G, kind="message.refused")] == [6]
    assert store.events(G, kind="hub.") == []
    assert [e.seq for e in store.events(G, limit=2)] == [1, 2]
    assert store.last_event_seq(G) == 6


def test_kind_prefix_is_literal(store: Store) -> None:
    store.apply([event_row(1, "task.done", "a"), event_row(2, "taskXdone", "a")])
    assert store.events(G, kind="task_") == []
    assert store.events(G, kind="%done") == []


def test_kind_prefix_is_case_sensitive(store: Store) -> None:
    store.apply([event_row(1, "task.done", "a")])
    assert store.events(G, kind="TASK.") == []
    assert [e.seq for e in store.events(G, kind="task.")] == [1]


def test_events_are_append_only_and_a_batch_is_one_transaction(store: Store) -> None:
    store.apply([event_row(1, "task.submitted", "a"), task_row("a", 1)])
    with pytest.raises(StoreError):
        store.apply([task_row("b", 2), event_row(1, "task.submitted", "b")])
    assert [t.id for t in store.load_tasks(G)] == ["a"]  # b rolled back with the event
    assert [e.task_id for e in store.events(G)] == ["a"]
    store.apply([])  # an empty batch is fine
    assert store.last_event_seq(G) == 1


# ---------------------------------------------------------------- a hub restarted


async def _ask(nc: NATS, subject: str, message: BaseModel) -> BaseModel:
    return await ask(nc, subject, encode(message))


async def test_a_restarted_hub_reloads_its_tasks_and_continues_the_event_log(
    nats_server: EmbeddedNats, store: Store, tmp_path: Path, nc: NATS
) -> None:
    settings = hub_settings(nats_server, tmp_path)
    g = settings.group
    submit_subject = subjects.api(g, subjects.ANON_SENDER, subjects.API_SUBMIT)
    py = {"python": 0.5}

    first = Hub(settings, store=store)
    await first.start()
    worker = FakeAgent(nc, "w1", {"python": 0.9}, group=g)
    try:
        await worker.start()
        specs = [
            TaskSpec(id="done", title="done", skills=py),
            TaskSpec(id="ready", title="ready", skills={"go": 0.5}),
            TaskSpec(id="pending", title="pending", depends_on=["ready"]),
            TaskSpec(id="gone", title="gone", skills={"go": 0.5}),
            TaskSpec(id="orphan", title="orphan", depends_on=["gone"]),
            TaskSpec(id="running", title="running", skills=py, depends_on=["done"]),
        ]
        reply = await _ask(nc, submit_subject, SubmitTasks(tasks=specs))
        assert isinstance(reply, Submitted), reply
        offer = await asyncio.wait_for(worker.offers.get(), WAIT)
        assert offer.task_id == "done"
        assert (await worker.finish(offer, {"n": 1})).state is TaskState.DONE
        cancelled = await _ask(
            nc,
            subjects.api(g, subjects.ANON_SENDER, subjects.API_CANCEL),
            CancelTask(task_id="gone"),
        )
        assert getattr(cancelled, "state", None) is TaskState.CANCELLED
        running = await asyncio.wait_for(worker.offers.get(), WAIT)
        assert running.task_id == "running"
        assert running.dependency_outputs == {"done": {"n": 1}}
        deadline = time.monotonic() + WAIT
        while first.board.tasks["running"].state is not TaskState.RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        before = {i: (r.state, r.attempt, r.failures) for i, r in first.board.tasks.items()}
    finally:
        await first.stop()
    assert first.write_errors == 0
    seqs_before = [e.seq for e in store.events(g)]
    assert seqs_before == list(range(1, len(seqs_before) + 1))
    assert store.last_event_seq(g) == seqs_before[-1]

    second = Hub(settings, store=store)
    await second.start()
    try:
        after = {i: (r.state, r.attempt, r.failures) for i, r in second.board.tasks.items()}
        assert after == before
        assert after["running"][0] is TaskState.RUNNING  # the worker kept heart-beating
        assert second.board.tasks["done"].output == {"n": 1}
        listed = await _ask(
            nc, subjects.api(g, subjects.ANON_SENDER, subjects.API_TASKS), ListTasks()
        )
        assert isinstance(listed, TaskList)
        assert [t.id for t in listed.tasks] == [
            "done",
            "ready",
            "pending",
            "gone",
            "orphan",
            "running",
        ]
        # the attempt that ran across the restart finishes on the new hub
        ack = await worker.finish(running, "late but fine")
        assert (ack.accepted, ack.state) == (True, TaskState.DONE)
        # new submissions are numbered after the old ones
        reply = await _ask(
            nc,
            submit_subject,
            SubmitTasks(tasks=[TaskSpec(id="new", title="n", skills={"go": 0.5})]),
        )
        assert isinstance(reply, Submitted)
        assert second.board.tasks["new"].seq > max(r.seq for r in first.board.tasks.values())
        await second.durable()
    finally:
        await worker.stop()
        await second.stop()
    assert second.write_errors == 0
    events = store.events(g, limit=100_000)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # continued, no duplicate, no gap
    kinds_after = [e.kind for e in events[len(seqs_before) :]]
    assert kinds_after[0] == "hub.recovered"
    assert "hub.started" in kinds_after
    states = {t.id: t.state for t in store.load_tasks(g)}
    assert states["running"] == "done"
    assert states["new"] == "ready"
    assert states["orphan"] == "failed"
