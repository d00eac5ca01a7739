"""The TUI against a real hub and a real nats-server (SQLite store), with real SDK agents as
the other participants: a human approves, rejects, takes work and reassigns, by keys."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from conftest import hub_settings
from rich.console import Console
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static, TabbedContent

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import (
    Constraints,
    GoalSpec,
    Plan,
    TaskSpec,
    TaskState,
    Timeouts,
    ValidationStep,
)
from tui import ClawTui, GroupSession
from tui.panels import AgentsTable, GoalsTable
from tui.screens import (
    ReasonScreen,
    ReassignScreen,
    ResultScreen,
    SubmitGoalScreen,
    SubmitTaskScreen,
    TaskDetailScreen,
)
from tui.session import STOP_TIMEOUT

WAIT = 20.0
SIZE = (140, 40)
HUMAN = [ValidationStep(kind="human")]


@pytest.fixture
async def hub(nats_server: EmbeddedNats, sqlite_store: Store, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub on SQLite only: these tests are about the TUI, not the database."""
    h = Hub(hub_settings(nats_server, tmp_path), store=sqlite_store)
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[HubClient]:
    async with HubClient(hub.url) as c:
        yield c


async def until(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds (the UI and the hub move on their own)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


async def until_state(client: HubClient, task_id: str, state: TaskState) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (status := await client.task(task_id)).state is not state:
        if loop.time() > deadline:
            raise AssertionError(f"{task_id} is {status.state.value}, not {state.value}")
        await asyncio.sleep(0.05)


def writer(name: str, level: float = 0.9, seen: list[tuple[str, list[str]]] | None = None) -> Agent:
    """An agent that writes ``draft by <name>``; it records the feedback it was given."""
    agent = Agent(name, id=name, skills={"writing": level})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        if seen is not None:
            seen.append((name, [v.reasons for v in ctx.assignment.feedback]))
        await ctx.log(f"{name} writing")
        return {"text": f"draft by {name}"}

    return agent


@asynccontextmanager
async def human_app(
    url: str, name: str = "Ann", **skills: float
) -> AsyncIterator[tuple[ClawTui, Pilot[None], GroupSession]]:
    session = GroupSession(url, name, skills=skills, capacity=1, refresh=0.2)
    await session.start()
    app = ClawTui(session.model, session)
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            yield app, pilot, session
    finally:
        await session.stop()


async def fill_reason(app: ClawTui, pilot: Pilot[None], reason: str) -> None:
    await until("the reason form", lambda: isinstance(app.screen, ReasonScreen))
    await pilot.press(*reason, "enter")
    await until("the form closes", lambda: not isinstance(app.screen, ReasonScreen))


async def test_human_submits_a_task_and_approves_its_result(hub: Hub, client: HubClient) -> None:
    agents = [writer("writer-1")]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, session):
            assert session.me == "ann"
            # the human joined as a participant of kind human
            await until("Ann in the agents table", lambda: "ann" in app.model.agents)
            assert app.model.agents["ann"].profile.kind == "human"

            await pilot.press("n")
            await until("the new-task form", lambda: isinstance(app.screen, SubmitTaskScreen))
            await pilot.press(*"Write a haiku", "tab", *"writing=0.5", "ctrl+s")
            await until("the task on the board", lambda: len(app.model.tasks) == 1)
            [task_id] = app.model.tasks
            spec = (await client.task(task_id)).spec
            assert spec.validation == HUMAN and spec.skills == {"writing": 0.5}

            await until(
                "the result waits for a human",
                lambda: app.model.tasks[task_id].state is TaskState.NEEDS_HUMAN,
            )
            assert app.select_task(task_id)
            await pilot.press("a")
            await fill_reason(app, pilot, "lovely")
            await until("the notification", lambda: f"{task_id} approved: now" in notices(app))

            done = await client.wait(task_id, timeout=WAIT)
            assert done.state is TaskState.DONE
            assert done.output == {"text": "draft by writer-1"}
            [verdict] = [v for v in done.verdicts if v.step == "human"]
            assert (verdict.by, verdict.accepted, verdict.reasons) == ("ann", True, "lovely")
            await until(
                "the board shows it done",
                lambda: app.model.tasks[task_id].state is TaskState.DONE,
            )
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


async def test_human_rejects_and_another_agent_reworks(hub: Hub, client: HubClient) -> None:
    seen: list[tuple[str, list[str]]] = []
    agents = [writer("writer-1", 0.9, seen), writer("writer-2", 0.8, seen)]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, _):
            [task_id] = await client.submit(
                TaskSpec(title="Write a poem", skills={"writing": 0.5}, validation=HUMAN)
            )
            await until(
                "the first result waits",
                lambda: (
                    (t := app.model.tasks.get(task_id)) is not None
                    and t.state is TaskState.NEEDS_HUMAN
                ),
            )
            first = app.model.tasks[task_id].history[-1].agent_id
            assert app.select_task(task_id)
            await pilot.press("r")
            await fill_reason(app, pilot, "too short")
            await until("the notification", lambda: f"{task_id} rejected: now" in notices(app))

            await until(
                "the rework waits",
                lambda: (
                    app.model.tasks[task_id].state is TaskState.NEEDS_HUMAN
                    and app.model.tasks[task_id].attempt == 2
                ),
            )
            second = app.model.tasks[task_id].history[-1].agent_id
            assert second != first  # rework="other": another participant
            assert seen == [(first, []), (second, ["too short"])]  # the reason reached it

            assert app.select_task(task_id)
            await pilot.press("a")
            await fill_reason(app, pilot, "")
            done = await client.wait(task_id, timeout=WAIT)
            assert done.state is TaskState.DONE
            assert done.output == {"text": f"draft by {second}"}
            assert [h.agent_id for h in done.history] == [first, second]
            assert [(v.by, v.accepted) for v in done.verdicts if v.step == "human"] == [
                ("ann", False),
                ("ann", True),
            ]
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


async def test_task_offered_to_the_human_is_done_with_their_result(
    hub: Hub, client: HubClient
) -> None:
    async with human_app(hub.url, writing=0.7) as (app, pilot, _):
        [task_id] = await client.submit(
            TaskSpec(
                title="Name the release",
                skills={"writing": 0.5},
                constraints=Constraints(kinds=["human"]),
            )
        )
        await until("the offer in my work", lambda: task_id in app.model.work)
        await pilot.press("3")
        await pilot.press("s")
        await until("the result form", lambda: isinstance(app.screen, ResultScreen))
        await pilot.press(*'{"name": "Otter"}', "ctrl+s")
        done = await client.wait(task_id, timeout=WAIT)
        assert done.state is TaskState.DONE
        assert done.output == {"name": "Otter"}  # JSON when it parses
        assert done.history[-1].agent_id == "ann"
        await until("the item leaves my work", lambda: task_id not in app.model.work)


async def test_human_takes_a_ready_task_before_a_better_agent(hub: Hub, client: HubClient) -> None:
    """Ann (capacity 1) is busy with one task and writer-1 with another, so a third waits
    in ready. Ann takes it: when writer-1 comes free it does not get it; Ann does."""
    release = asyncio.Event()
    slow = Agent("writer-1", id="writer-1", skills={"writing": 0.9})

    @slow.handler
    async def work(ctx: TaskContext) -> object:
        await release.wait()
        return {"text": "slow draft"}

    await slow.start(hub.url)
    try:
        async with human_app(hub.url, writing=0.6) as (app, pilot, _):
            only_ann = Constraints(kinds=["human"])
            long = Timeouts(stall=120)
            [mine] = await client.submit(
                TaskSpec(title="Warm-up", skills={"writing": 0.5}, constraints=only_ann)
            )
            [busy] = await client.submit(
                TaskSpec(title="Busy work", skills={"writing": 0.8}, timeouts=long)
            )
            await until("Ann holds the warm-up", lambda: mine in app.model.work)
            await until_state(client, busy, TaskState.RUNNING)
            [wanted] = await client.submit(TaskSpec(title="Tagline", skills={"writing": 0.5}))
            await until(
                "the tagline on the board, ready",
                lambda: (
                    (t := app.model.tasks.get(wanted)) is not None and t.state is TaskState.READY
                ),
            )
            assert app.select_task(wanted)
            await pilot.press("t")
            await until("the claim is recorded", lambda: _claimed(app, wanted))

            release.set()  # writer-1 comes free: the tagline stays pinned to Ann
            await until_state(client, busy, TaskState.DONE)
            assert (await client.task(wanted)).state is TaskState.READY

            assert app.select_row("work-table", mine)
            await pilot.press("s")
            await until("the result form", lambda: isinstance(app.screen, ResultScreen))
            await pilot.press(*"warmed up", "ctrl+s")
            await until("the tagline offered to Ann", lambda: wanted in app.model.work)
            assert app.select_row("work-table", wanted)
            await pilot.press("s")
            await until("the result form", lambda: isinstance(app.screen, ResultScreen))
            await pilot.press(*"Small hub, big group", "ctrl+s")

            first, done = await client.wait_all([mine, wanted], timeout=WAIT)
            assert first.output == "warmed up"  # plain text when it is not JSON
            assert done.state is TaskState.DONE
            assert done.output == "Small hub, big group"
            assert [h.agent_id for h in done.history] == ["ann"]
    finally:
        release.set()
        await slow.stop()


def _claimed(app: ClawTui, task_id: str) -> bool:
    return any(e.kind == "task.claimed" and e.task_id == task_id for e in app.model.events)


async def test_reassign_from_the_tui_moves_the_task(hub: Hub, client: HubClient) -> None:
    stuck = Agent("stuck", id="stuck", skills={"writing": 0.9})
    cancelled = asyncio.Event()

    @stuck.handler
    async def hang(ctx: TaskContext) -> object:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return None

    fresh = writer("fresh", 0.6)
    await stuck.start(hub.url)
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, _):
            [task_id] = await client.submit(
                TaskSpec(title="Essay", skills={"writing": 0.5}, timeouts=Timeouts(stall=120))
            )
            await until(
                "stuck runs it",
                lambda: (
                    (t := app.model.tasks.get(task_id)) is not None and t.state is TaskState.RUNNING
                ),
            )
            await fresh.start(hub.url)
            await until("fresh is listed", lambda: "fresh" in app.model.agents)
            assert app.select_task(task_id)
            await pilot.press("g")
            await until("the reassign form", lambda: isinstance(app.screen, ReassignScreen))
            app.screen.query_one("#to", Select).value = "fresh"
            await pilot.press(*"stuck for ages", "enter")

            done = await client.wait(task_id, timeout=WAIT)
            assert done.state is TaskState.DONE
            assert done.output == {"text": "draft by fresh"}
            assert [(h.agent_id, h.outcome) for h in done.history] == [
                ("stuck", "revoked"),
                ("fresh", "done"),
            ]
            assert done.failures == 0  # a reassign is not a failure
            assert "stuck for ages" in done.history[0].reason
            await until("stuck was told to stop", cancelled.is_set)
    finally:
        await asyncio.gather(stuck.stop(), fresh.stop())


async def test_pause_drain_cancel_and_chat(hub: Hub, client: HubClient) -> None:
    agents = [writer("writer-1")]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, _):
            await until("writer-1 listed", lambda: "writer-1" in app.model.agents)
            assert app.select_row("agents-table", "writer-1")
            await pilot.press("p")
            await until_mode(client, "writer-1", "paused")
            await until("the table shows it", lambda: app.model.agents["writer-1"].mode == "paused")
            # a paused agent gets no new work: the task waits in ready
            [task_id] = await client.submit(TaskSpec(title="Later", skills={"writing": 0.5}))
            await until("the task on the board", lambda: task_id in app.model.tasks)
            assert app.model.tasks[task_id].state is TaskState.READY
            await pilot.press("p")  # resume
            await until_mode(client, "writer-1", "active")
            assert (await client.wait(task_id, timeout=WAIT)).state is TaskState.DONE
            await pilot.press("d")
            await until_mode(client, "writer-1", "draining")

            [doomed] = await client.submit(TaskSpec(title="Never", skills={"cobol": 0.5}))
            await until("the task on the board", lambda: doomed in app.model.tasks)
            # the hub refuses to give it to a writer: a notification, not a crash
            assert app.select_task(doomed)
            await pilot.press("g")
            await until("the reassign form", lambda: isinstance(app.screen, ReassignScreen))
            app.screen.query_one("#to", Select).value = "writer-1"
            await pilot.press("enter")
            await until("the refusal shown", lambda: "writer-1 cannot take" in notices(app))
            assert app.is_running
            await pilot.press("x")
            await fill_reason(app, pilot, "not needed")
            cancelled = await client.wait(doomed, timeout=WAIT)
            assert cancelled.state is TaskState.CANCELLED
            assert "not needed" in (cancelled.error or "")

            # the Agents tab names each participant by id, and by name where it differs
            assert app.select_row("agents-table", "ann")
            table = app.main.query_one("#agents-table", AgentsTable)
            labels = {str(table.cell_at(row, 0)) for row in range(table.row_count)}
            assert {"ann (Ann)", "writer-1"} <= labels

            # on the Chat tab the keys still work: `c` goes to the input, it types no "c"
            await pilot.press("5")
            assert app.main.query_one(TabbedContent).active == "chat"
            chat_input = app.main.query_one("#chat-input", Input)
            assert not chat_input.has_focus
            await pilot.press("c")
            assert chat_input.has_focus and chat_input.value == ""
            await pilot.press(*"hello all", "enter")
            await client.chat("writer-1", "hi Ann")
            await until(
                "both lines in the chat",
                lambda: (
                    [(c.sender, c.text) for c in app.model.chat]
                    == [("ann", "hello all"), ("writer-1", "hi Ann")]
                ),
            )
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


def notices(app: ClawTui) -> str:
    """The notifications shown so far (run_test(notifications=True) keeps them)."""
    return "\n".join(n.message for n in app._notifications)


async def until_mode(client: HubClient, agent_id: str, mode: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        [info] = [a for a in await client.agents(include_gone=True) if a.profile.id == agent_id]
        if info.mode == mode:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{agent_id} is {info.mode}, not {mode}")
        await asyncio.sleep(0.05)


async def test_human_approves_a_plan(
    hub: Hub, client: HubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)  # the default coordinator model's
    agents = [writer("writer-1")]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, _):
            plan = Plan(tasks=[TaskSpec(id="p-draft", title="Draft", skills={"writing": 0.5})])
            goal = await client.submit_goal(
                GoalSpec(text="Write the launch post", approve_plan=True), plan
            )
            assert goal.state == "awaiting_approval"
            await until("the goal listed", lambda: goal.id in app.model.goals)
            assert app.select_row("goals-table", goal.id)
            await pilot.press("a")
            finished = await client.wait_goal(goal.id, timeout=WAIT)
            assert finished.state == "done"
            assert finished.deliverable == {"text": "draft by writer-1"}

            # a goal in words, from the form: this hub has no model key, so planning fails
            # and says why (the goal is kept, the app goes on)
            await pilot.press("1", "G")
            await until("the goal form", lambda: isinstance(app.screen, SubmitGoalScreen))
            await pilot.press(*"Plan a party", "ctrl+s")
            await until("two goals", lambda: len(app.model.goals) == 2)
            [worded] = [g for g in app.model.goals.values() if g.spec.text == "Plan a party"]
            assert worded.spec.approve_plan  # the form asks for approval by default
            failed = await client.wait_goal(worded.id, timeout=WAIT)
            assert failed.state == "failed" and "MOONSHOT_API_KEY" in (failed.error or "")
            # the Goals tab says why it failed, in full under the table
            assert app.select_row("goals-table", worded.id)
            await until(
                "the reason under the goals table",
                lambda: "MOONSHOT_API_KEY" in shown_text(app, "#goal-detail"),
            )
            assert "cannot plan" in str(goals_cell(app, worded.id, "Why it failed"))
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


def shown_text(app: ClawTui, selector: str) -> str:
    """What a ``Static`` of the current screen shows, as plain text."""
    console = Console(width=SIZE[0], record=True, file=io.StringIO())
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


async def test_task_detail_follows_new_log_lines(hub: Hub, client: HubClient) -> None:
    """The open detail of a running task shows each log line as it comes; scrolled to the end,
    it stays there (like ``tail -f``); scrolled up, new lines do not move the view."""
    next_line = asyncio.Event()
    agent = Agent("chatty", id="chatty", skills={"writing": 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        for i in range(30):
            await ctx.log(f"warming up {i}")
        for i in range(1, 4):
            await ctx.log(f"line {i} of the work")
            await next_line.wait()
            next_line.clear()
        return "done"

    def shows(text: str) -> Callable[[], bool]:
        return lambda: text in shown_text(app, "#detail")

    await agent.start(hub.url)
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, _):
            [task_id] = await client.submit(
                TaskSpec(title="Talk a lot", skills={"writing": 0.5}, timeouts=Timeouts(stall=120))
            )
            await until("the first line", lambda: _logged(app, task_id, "line 1 of the work"))
            await until("on the board", lambda: task_id in app.model.tasks)
            assert app.select_task(task_id)
            await pilot.press("enter")
            await until("the detail", lambda: isinstance(app.screen, TaskDetailScreen))
            await until("line 1 shown", shows("line 1 of the work"))
            scroll = app.screen.query_one("#detail-scroll", VerticalScroll)
            await until("the detail overflows", lambda: scroll.max_scroll_y > 0)
            assert scroll.scroll_y == 0  # it opens at the top: the spec first

            next_line.set()  # not following: the view stays where the human put it
            await until("line 2 shown", shows("line 2 of the work"))
            await pilot.pause()
            assert scroll.scroll_y == 0

            await pilot.press("end")
            await until("at the end", lambda: scroll.scroll_y == scroll.max_scroll_y > 0)
            bottom = scroll.max_scroll_y
            next_line.set()  # following: the new line comes into view
            await until("line 3 shown", shows("line 3 of the work"))
            await until(
                "still at the end",
                lambda: scroll.max_scroll_y > bottom and scroll.scroll_y == scroll.max_scroll_y,
            )
            next_line.set()
            await until("done shown", shows("task.done"))
            await until("and in view", lambda: scroll.scroll_y == scroll.max_scroll_y)
    finally:
        await agent.stop()


def goals_cell(app: ClawTui, goal_id: str, column: str) -> object:
    table = app.main.query_one("#goals-table", GoalsTable)
    return table.get_cell(goal_id, column)


def _logged(app: ClawTui, task_id: str, line: str) -> bool:
    return any(e.task_id == task_id and e.message == line for e in app.model.events)


# -- leaving: always promptly, and as a person who left (agent.left), not a crash ------------

#: Quitting ends within this many seconds, whatever the hub does (the session's bound + slack).
QUIT_WITHIN = STOP_TIMEOUT + 3.0


async def quit_and_time(app: ClawTui, pilot: Pilot[None]) -> float:
    """Press q; how long the app took to end (it must end within ``QUIT_WITHIN``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pilot.press("q")
    await until("the app ends", lambda: not app.is_running, timeout=QUIT_WITHIN)
    return loop.time() - started


async def agent_events(url: str, agent_id: str) -> list[tuple[str, str]]:
    async with HubClient(url) as client:
        return [
            (e.kind, e.message)
            for e in await client.history(kind="agent.")
            if e.agent_id == agent_id
        ]


async def test_quit_leaves_the_group_as_agent_left(hub: Hub, client: HubClient) -> None:
    async with human_app(hub.url, review=0.9) as (app, pilot, _):
        await until("Ann listed", lambda: "ann" in app.model.agents)
        before = app.model.agents["ann"].reliability
        assert await quit_and_time(app, pilot) < QUIT_WITHIN
    kinds = [kind for kind, _ in await agent_events(hub.url, "ann")]
    # on a starved machine Ann may miss beats and be away, then back, before she quits:
    # a person, never lost; the quit itself is a goodbye
    assert kinds[0] == "agent.registered" and kinds[-1] == "agent.left", kinds
    assert set(kinds[1:-1]) <= {"agent.away", "agent.back"}, kinds
    [ann] = [a for a in await client.agents(include_gone=True) if a.profile.id == "ann"]
    assert (ann.state, ann.reliability) == ("left", before)  # leaving is not a failure


async def test_quit_while_the_hub_is_down_ends_promptly(
    hub: Hub, nats_server: EmbeddedNats
) -> None:
    async with human_app(hub.url, review=0.9) as (app, pilot, session):
        await until("Ann listed", lambda: "ann" in app.model.agents)
        await hub.stop()
        await asyncio.to_thread(nats_server.kill)
        await until("the TUI sees the hub gone", lambda: not app.model.connected)
        assert await quit_and_time(app, pilot) < QUIT_WITHIN
        assert not session.human.agent.registered or session.human.agent.running == []


async def test_quit_just_after_a_hub_restart_ends_promptly_and_leaves(
    hub: Hub, nats_server: EmbeddedNats, sqlite_store: Store, tmp_path: Path
) -> None:
    """The hang that was seen: the hub and its bus restart under the TUI, then q."""
    async with human_app(hub.url, review=0.9) as (app, pilot, _):
        await until("Ann listed", lambda: "ann" in app.model.agents)
        await hub.stop()
        await asyncio.to_thread(nats_server.restart)  # same port: the TUI reconnects
        again = Hub(hub_settings(nats_server, tmp_path), store=sqlite_store)
        await again.start()
        try:
            await until(
                "Ann rejoined",
                lambda: any(
                    e.kind == "agent.rejoined" and e.agent_id == "ann" for e in app.model.events
                ),
            )
            assert await quit_and_time(app, pilot) < QUIT_WITHIN
            kinds = [kind for kind, _ in await agent_events(again.url, "ann")]
            assert kinds[-1] == "agent.left" and "agent.lost" not in kinds
        finally:
            await again.stop()


async def test_quit_ends_even_when_a_loop_ignores_its_cancellation(
    hub: Hub, client: HubClient
) -> None:
    """``stop`` used to ``gather`` its loops: one stuck in a request on a dead connection
    hung the quit, the human heart-beating on as online. Now it is abandoned and the human
    still leaves."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # as a finally clause stuck on a dead socket would

    async with human_app(hub.url, review=0.9) as (app, pilot, session):
        await until("Ann listed", lambda: "ann" in app.model.agents)
        stuck = asyncio.create_task(stubborn())
        session._tasks.append(stuck)
        try:
            assert await quit_and_time(app, pilot) < QUIT_WITHIN
            assert not stuck.done()  # abandoned, not waited for
            [ann] = [a for a in await client.agents(include_gone=True) if a.profile.id == "ann"]
            assert ann.state == "left"
        finally:
            release.set()
            await stuck


async def test_an_idle_group_costs_no_redraw(hub: Hub, client: HubClient) -> None:
    """Idle, the TUI used to take ~11% of a core: each poll told the screen to redraw and
    rebuilt the footer. Now polls that find nothing new (heartbeats aside) tell no one, and
    the footer is rebuilt only when a key's dimmed state changes."""
    agents = [writer("writer-1")]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with human_app(hub.url, review=0.9) as (app, pilot, session):
            [task_id] = await client.submit(TaskSpec(title="Haiku", skills={"writing": 0.5}))
            await until_state(client, task_id, TaskState.DONE)
            await until(
                "the board shows it",
                lambda: (t := app.model.tasks.get(task_id)) is not None and t.state.terminal,
            )
            await pilot.pause(1.0)  # the events of the run settle
            footers: list[object] = []
            app.screen.bindings_updated_signal.subscribe(app, footers.append)
            version, beats = app.model.version, app.model.agents["writer-1"].last_seen
            polls = 0
            real_sync = session.sync

            async def counted() -> None:
                nonlocal polls
                polls += 1
                await real_sync()

            session.sync = counted  # type: ignore[method-assign]
            await until("a few polls", lambda: polls >= 4)
            await until("a heartbeat read", lambda: app.model.agents["writer-1"].last_seen > beats)
            assert app.model.version == version  # nothing changed: no listener was told
            assert footers == []  # and the footer was not rebuilt
            assert app.model.connected
    finally:
        await asyncio.gather(*(a.stop() for a in agents))
