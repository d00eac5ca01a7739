"""Review findings: each test shows one bug found in review (kept as a strict xfail until it
was fixed) and now guards its fix."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from conftest import hub_settings
from fakes import FakeAgent, ask
from nats.aio.client import Client as NATS
from test_board import RecordingSink, offers, register, result, start, task
from test_board import settings as board_settings

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.board import Board
from clawhub.errors import StoreError
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import AgentRow, Row, Store, Write
from clawhub.store.lease import Lease
from clawhub.store.mapping import agent_record
from protocols import (
    AgentProfile,
    ErrorCode,
    ErrorReply,
    Progress,
    ProtocolError,
    Register,
    SubmitTasks,
    Submitted,
    TaskSpec,
    TaskState,
    decode_any,
    encode,
    subjects,
)

S = TaskState
GROUP = "default"


async def poll(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as ``pred()`` holds, False once ``timeout`` passed without it."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def submit(nc: NATS, *specs: TaskSpec) -> Any:
    return await ask(
        nc,
        subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_SUBMIT),
        encode(SubmitTasks(tasks=list(specs))),
    )


# ---------------------------------------------------------------- board rules


def test_output_schema_that_raises_goes_to_a_human(tmp_path: Path) -> None:
    """``check_schema`` accepts ``{"$ref": "#/$defs/missing"}``, but validating against it
    raises. Fixed: the output is not at fault, so the task escalates to a human (instead of
    sitting in ``validating`` forever) and the holder's slot is free."""
    sink = RecordingSink()
    board = Board("g1", board_settings(tmp_path), sink, "hub-test")
    board.submit([task("a", output_schema={"$ref": "#/$defs/missing"})])
    register(board, "w1", capacity=1)
    offer = start(board, "a")
    with contextlib.suppress(Exception):  # the hub turns any exception into `internal`
        result(board, offer, output={"x": 1})
    rec = board.tasks["a"]
    assert rec.state is S.NEEDS_HUMAN, "task left in validating: never offered again"
    assert board.agents["w1"].held == {}, "the holder's capacity slot is leaked"
    escalated = [e for e in sink.events if e.kind == "task.escalated"]
    assert "output_schema cannot be applied" in escalated[0].message


def test_stale_backoff_makes_the_scheduler_spin(tmp_path: Path) -> None:
    """``not_before`` is never reset, so a task that once backed off and is still waiting in
    ``ready`` makes ``next_retry()`` return a time in the past: the scheduler loop then
    wakes every 10 ms (``max(0.01, retry - now)``) for as long as the task waits."""
    sink = RecordingSink()
    board = Board("g1", board_settings(tmp_path), sink, "hub-test")
    register(board, "w1", capacity=1)
    board.submit([task("a")])
    first = offers(board)[0]
    board.offer_refused("a", first.attempt, "w1", "declined", "no")
    now = time.monotonic()
    assert offers(board, now) == []  # everyone declined: backs off
    board.submit([task("b", priority=10)])
    later = now + 10.0
    got = offers(board, later)
    assert [o.task.id for o in got] == ["b"]  # w1 is now full; a waits in ready
    retry = board.next_retry()
    assert retry is None or retry > later, f"next_retry() is {later - (retry or 0):.1f}s stale"


def test_agent_restarted_with_the_hub_may_register_a_new_session(tmp_path: Path) -> None:
    """After a hub restart ``Board.load`` keeps stored online agents for a grace window so
    they can re-attach. Fixed: an agent process that was restarted too (new session, same
    id) is not refused ``wrong_session`` when the old session has not been heard from
    since the restart."""
    sink = RecordingSink()
    board = Board("g1", board_settings(tmp_path), sink, "hub-test")
    profile = AgentProfile(id="w1", name="w1", skills={"python": 0.8})
    row = AgentRow(
        group="g1",
        id="w1",
        profile=profile.model_dump_json(),
        session="old-session",
        state="online",
        last_seen=time.time() - 30,
    )
    board.load([], [agent_record(row)], 0)
    try:
        ack = board.register(Register(profile=profile, session="new-session"))
    except ProtocolError as exc:
        pytest.fail(f"a new process after a hub restart was refused: {exc}")
    assert ack.agent_id == "w1"


# ---------------------------------------------------------------- store and durability


class GatedStore(Store):
    """A SQLite store that can hold the first batch matching ``hold_if``, and can fail."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.hold_if: Callable[[Sequence[Row]], bool] | None = None
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.held_committed = False
        self.fail = False

    def apply(self, batch: Sequence[Row], fence: Lease | None = None) -> None:
        held = self.hold_if is not None and self.hold_if(batch)
        if held:
            self.hold_if = None
            self.gate.clear()
            self.entered.set()
            self.gate.wait(30)
        if self.fail:
            raise StoreError("injected store failure")
        super().apply(batch, fence)
        if held:
            self.held_committed = True


def _has_done_task(batch: Sequence[Row]) -> bool:
    return any(isinstance(r, Write) and r.values.get("state") == "done" for r in batch)


@pytest.fixture
def gated_store(tmp_path: Path) -> Iterator[GatedStore]:
    s = GatedStore(f"sqlite:///{tmp_path / 'gated.db'}")
    yield s
    s.gate.set()
    s.close()


async def test_result_ack_is_sent_before_its_commit(
    nats_server: EmbeddedNats, gated_store: GatedStore, nc: NATS, tmp_path: Path
) -> None:
    """``write()`` sets the writer's signal, so the writer task runs before ``_respond`` and
    swaps ``_pending``/``_waiters`` out; ``durable()`` then sees both empty and returns at
    once. The ResultAck goes out while the batch holding ``done`` is still uncommitted: the
    agent forgets its result, and a hub crash now loses it (the task sits in running until
    its stall timeout and is run again)."""
    hub = Hub(hub_settings(nats_server, tmp_path), store=gated_store)
    await hub.start()
    agent = FakeAgent(nc, "w1", {"python": 0.9})
    try:
        await agent.start()
        assert isinstance(await submit(nc, TaskSpec(id="t1", title="t1")), Submitted)
        offer = await agent.next_offer()
        assert await poll(lambda: hub.board.tasks["t1"].state is S.RUNNING)
        gated_store.hold_if = _has_done_task
        data = encode(agent.result_msg("t1", offer.attempt, "ok"))
        first = asyncio.create_task(
            nc.request(subjects.hub_result(GROUP, subjects.ANON_SENDER), data, timeout=20)
        )
        assert await asyncio.to_thread(gated_store.entered.wait, 10)
        # a re-sent result (the SDK re-sends after a request timeout) must wait too
        try:
            again = await nc.request(
                subjects.hub_result(GROUP, subjects.ANON_SENDER), data, timeout=1.0
            )
        except nats.errors.TimeoutError:
            again = None
        acked_early = first.done() or again is not None
        committed = gated_store.held_committed
        gated_store.gate.set()
        await first
        if acked_early:
            assert committed, "the result was acked before it was committed"
    finally:
        gated_store.gate.set()
        await agent.stop()
        await hub.stop()


async def test_lone_surrogate_in_output_is_refused_and_the_writer_goes_on(
    hub: Hub, nc: NATS
) -> None:
    """JSON ``"\\ud800"`` would pass into a ``JsonValue`` (the output), but no store can
    encode it; a batch holding it would be retried forever. Fixed: ``decode`` refuses such
    text as ``invalid`` with a clear reason, and the hub keeps committing."""
    agent = FakeAgent(nc, "w1", {"python": 0.9})
    await agent.start()
    try:
        assert isinstance(await submit(nc, TaskSpec(id="t1", title="t1")), Submitted)
        offer = await agent.next_offer()
        raw = encode(agent.result_msg("t1", offer.attempt, "PLACEHOLDER")).replace(
            b'"PLACEHOLDER"', b'"half a pair: \\ud83d"'
        )
        answer = await nc.request(subjects.hub_result(GROUP, subjects.ANON_SENDER), raw, timeout=5)
        refused = decode_any(answer.data)
        assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.INVALID
        assert "unpaired UTF-16 surrogate" in refused.message
        reply = await submit(nc, TaskSpec(id="t2", title="after the bad output"))
        assert isinstance(reply, Submitted), f"the hub no longer commits anything: {reply}"
        assert hub.write_errors == 0
    finally:
        await agent.stop()


async def test_nul_in_a_log_line_is_refused_and_the_postgres_writer_goes_on(
    hub: Hub, nc: NATS, store: Store
) -> None:
    """PostgreSQL text cannot hold NUL. A log line (or handler error text, or task title)
    containing ``\\x00`` would poison the writer's batch. Fixed: refused at decoding, on
    every store alike, and the hub keeps committing."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores NUL fine")
    agent = FakeAgent(nc, "w1", {"python": 0.9})
    await agent.start()
    try:
        assert isinstance(await submit(nc, TaskSpec(id="t1", title="t1")), Submitted)
        offer = await agent.next_offer()
        line = Progress(
            task_id="t1",
            attempt=offer.attempt,
            agent_id="w1",
            message="subprocess said: \x00\x01",
            log=True,
            ts=time.time(),
        )
        await nc.publish(subjects.hub_progress(GROUP, subjects.ANON_SENDER), encode(line))
        await nc.flush()
        reply = await submit(nc, TaskSpec(id="t2", title="after the log line"))
        assert isinstance(reply, Submitted), f"the hub no longer commits anything: {reply}"
        assert hub.write_errors == 0
    finally:
        await agent.stop()


# ---------------------------------------------------------------- the bus


async def test_assignment_over_max_payload_fails_the_task(tmp_path: Path) -> None:
    """A task whose dependency outputs together exceed the server's max_payload can never be
    offered: ``nc.request`` raises ``MaxPayloadError``, ``_offer`` treats it as "no reply",
    and the task cycles ready → assigned → ready forever (declines do not count), never
    failing. With the embedded default (8 MB) a fan-in of nine 1 MB outputs does it; here
    the server is small so the test stays light."""
    server = EmbeddedNats(tmp_path / "nats", max_payload=64 * 1024)
    server.start()
    try:
        hub = Hub(hub_settings(server, tmp_path, max_message_bytes=40 * 1024), store=None)
        await hub.start()
        conn = await nats.connect(server.url)
        agent = FakeAgent(conn, "w1", {"python": 0.9})
        try:
            await agent.start()
            deps = [TaskSpec(id=f"d{i}", title=f"d{i}") for i in range(3)]
            fan_in = TaskSpec(id="join", title="join", depends_on=[d.id for d in deps if d.id])
            assert isinstance(await submit(conn, *deps, fan_in), Submitted)
            for _ in deps:
                offer = await agent.next_offer()
                ack = await agent.finish(offer, "x" * 30_000)
                assert ack.accepted
            rec = hub.board.tasks["join"]
            await poll(lambda: rec.state.terminal or len(rec.history) >= 6, timeout=15)
            assert rec.state.terminal, (
                f"join re-offered {len(rec.history)} times and still {rec.state.value}: "
                f"{rec.history[-1].reason if rec.history else ''}"
            )
            assert rec.state is S.FAILED and "too large for the bus" in (rec.error or "")
        finally:
            await agent.stop()
            await conn.drain()
            await hub.stop()
    finally:
        server.stop()


# ---------------------------------------------------------------- the SDK


async def test_a_cancelled_sync_handler_keeps_its_slot_until_its_thread_returns(
    hub: Hub, nats_server: EmbeddedNats
) -> None:
    """A sync handler runs in a worker thread; a Cancel cancels the asyncio task but the
    thread runs on. Fixed: the attempt keeps its slot until the thread returns, so the agent
    declines the next task as busy instead of running more handlers than ``capacity``."""
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    peak = 0
    started: list[str] = []

    agent = Agent("worker", skills={"python": 0.9}, capacity=1)

    @agent.handler
    def work(ctx: TaskContext) -> object:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            started.append(ctx.task_id)
        try:
            release.wait(20)  # ignores ctx.cancelled, like a blocking library call
        finally:
            with lock:
                running -= 1
        return "done"

    await agent.start(nats_server.url)
    try:
        async with HubClient(nats_server.url) as client:
            [a] = await client.submit([TaskSpec(id="a", title="a")])
            assert await poll(lambda: "a" in started)
            await client.cancel(a, reason="changed my mind")
            [b] = await client.submit([TaskSpec(id="b", title="b")])
            rec = hub.board.tasks[b]
            # either b starts (the bug) or the agent declines it as busy (correct)
            await poll(lambda: "b" in started or any(h.outcome == "declined" for h in rec.history))
            assert peak <= agent.profile.capacity, (
                f"{peak} handlers ran at once on an agent of capacity {agent.profile.capacity}"
            )
    finally:
        release.set()
        await agent.stop()


async def test_sdk_keeps_a_result_the_hub_could_not_commit(
    nats_server: EmbeddedNats, gated_store: GatedStore, tmp_path: Path
) -> None:
    """While the store fails, the hub answers the result with ``unavailable`` (nothing was
    committed). Fixed: the SDK keeps the result and sends it again until it is taken, so
    the output survives the outage."""
    hub = Hub(hub_settings(nats_server, tmp_path), store=gated_store)
    await hub.start()
    go = asyncio.Event()
    agent = Agent("worker", skills={"python": 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await go.wait()
        return "precious"

    await agent.start(nats_server.url)
    try:
        async with HubClient(nats_server.url) as client:
            await client.submit([TaskSpec(id="t1", title="t1")])
            assert await poll(lambda: bool(agent.running))
            await hub.durable()
            gated_store.fail = True
            go.set()
            assert await poll(lambda: hub.write_errors > 0)
            # the invariant: the result is committed, or the agent still holds it to re-send
            dropped = await poll(lambda: not agent.running, timeout=3)
            assert not dropped, "the SDK forgot a result the hub never committed"
    finally:
        gated_store.fail = False
        await agent.stop()
        await hub.stop()
