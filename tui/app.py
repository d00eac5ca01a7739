"""``ClawTui``: the Textual app a human uses to join a Claw Group.

The app shows a ``GroupModel`` and acts through a ``GroupSession`` (over the bus, never the
database). Without a session it is a read-only view of the model (the snapshot tests use
that with a fixed data set). Every hub error becomes a notification, never a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, RichLog, TabbedContent, TabPane

from protocols import AgentMode, ClawHubError, GoalSpec, TaskSpec, TaskState

from .model import BOARD_FILTERS, TASK_ACTIONS, GroupModel, why_not
from .panels import (
    AgentsTable,
    ChatPanel,
    EventsLog,
    GoalsPanel,
    GoalsTable,
    KeyedTable,
    Refresh,
    TaskPanel,
    WorkPanel,
    WorkTable,
)
from .screens import (
    HelpScreen,
    ReasonScreen,
    Reassignment,
    ReassignScreen,
    ResultScreen,
    SubmitGoalScreen,
    SubmitTaskScreen,
    TaskDetailScreen,
    parse_output,
)
from .session import GroupSession

__all__ = ["TABS", "ClawTui"]

T = TypeVar("T")

#: Tab ids in order (keys 1..6).
TABS = ("tasks", "agents", "work", "events", "chat", "goals")

#: Seconds between redraws for the clock alone (model changes redraw at once): every
#: redraw of a table whose ages moved repaints it, so an idle screen ticks slowly.
CLOCK_TICK = 5.0

#: The actions whose keys are dimmed when they cannot apply (``why_not``).
ACTIONS = (*sorted(TASK_ACTIONS), "pause_agent", "drain_agent", "approve_plan", "reject_plan")


class ClawTui(App[None]):
    """The Claw Hub TUI."""

    TITLE = "Claw Hub"
    CSS = "TabPane { padding: 0; }"
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("n", "new_task", "New task"),
        Binding("G", "new_goal", "New goal", show=False),
        Binding("c", "chat", "Chat"),
        Binding("ctrl+r", "sync", "Refresh", show=False),
        Binding("q", "quit", "Quit"),
        *(Binding(str(i + 1), f"tab('{tab}')", tab, show=False) for i, tab in enumerate(TABS)),
    ]

    def __init__(self, model: GroupModel, session: GroupSession | None = None) -> None:
        super().__init__()
        self.model = model
        self.session = session
        self._pending_refresh = False
        self._leaving = False
        self._bindings_state: tuple[object, ...] = ()

    @property
    def main(self) -> Screen[object]:
        """The main screen (the tabs), under any detail or form pushed over it."""
        return self.screen_stack[0]

    # -- layout and refresh -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="tasks"):
            with TabPane("1 Tasks", id="tasks"):
                yield TaskPanel(id="board")
            with TabPane("2 Agents", id="agents"):
                yield AgentsTable(id="agents-table")
            with TabPane("3 My work", id="work"):
                yield WorkPanel(id="work-panel")
            with TabPane("4 Events", id="events"):
                yield EventsLog(id="events-log")
            with TabPane("5 Chat", id="chat"):
                yield ChatPanel(id="chat-panel")
            with TabPane("6 Goals", id="goals"):
                yield GoalsPanel(id="goals-panel")
        yield Footer()

    def on_mount(self) -> None:
        me = self.model.agent_name(self.model.me) if self.model.me else "watching"
        self.title = f"Claw Hub · group {self.model.group} · {me}"
        self.model.subscribe(self._model_changed)
        self.refresh_views()
        self.main.query_one("#board", TaskPanel).table.focus()
        if self.session is not None:
            # ages (of tasks, of heartbeats) move with the clock; changes redraw at once
            self.set_interval(CLOCK_TICK, self.refresh_views)

    def on_unmount(self) -> None:
        self.model.unsubscribe(self._model_changed)

    def _model_changed(self) -> None:
        if not self._pending_refresh:
            self._pending_refresh = True
            self.call_later(self.refresh_views)

    def on_refresh(self, message: Refresh) -> None:
        self.refresh_views()

    def refresh_views(self) -> None:
        """Redraw every panel (and an open task detail) from the model."""
        self._pending_refresh = False
        if not self.screen_stack:  # closing
            return
        try:
            self._redraw()
        except NoMatches:
            closing = self._exit or self._closing or self.main._closing or self.main._closed
            if not closing:
                raise
            # a timer's tick while the app closes: its panels are being taken down

    def _redraw(self) -> None:
        model = self.model
        waiting = len(model.waiting_for_humans())
        parts = [model.status]
        if waiting:
            parts.append(f"{waiting} result(s) wait for a human")
        if model.work:
            parts.append(f"{len(model.work)} task(s) with you")
        self.sub_title = " · ".join(parts)
        self.main.query_one("#board", TaskPanel).refresh_from(model)
        self.main.query_one("#agents-table", AgentsTable).refresh_from(model)
        self.main.query_one("#work-panel", WorkPanel).refresh_from(model)
        self.main.query_one("#events-log", EventsLog).refresh_from(model)
        self.main.query_one("#chat-panel", ChatPanel).refresh_from(model)
        self.main.query_one("#goals-panel", GoalsPanel).refresh_from(model)
        for screen in self.screen_stack:
            if isinstance(screen, TaskDetailScreen):
                screen.refresh_from(model)
        self._refresh_bindings_if_changed()

    def _refresh_bindings_if_changed(self) -> None:
        """Redraw the footer only when a key's dimmed state changed: the footer is rebuilt
        at each ``refresh_bindings``, which re-lays out the screen (the main idle cost)."""
        state = (self.screen, self.focused, *(self.why_not(a) is None for a in ACTIONS))
        if state != self._bindings_state:
            self._bindings_state = state
            self.refresh_bindings()

    def _focus_tab(self, tab: str) -> None:
        if tab == "tasks":
            self.main.query_one("#board", TaskPanel).table.focus()
        elif tab == "chat":  # the log, so the keys keep working; `c` starts writing
            self.main.query_one("#chat-log", RichLog).focus()
        elif tab in ("agents", "goals"):
            self.main.query_one(f"#{tab}-table", KeyedTable).focus()
        elif tab == "work":
            self.main.query_one(WorkTable).focus()
        else:
            self.main.query_one("#events-log", EventsLog).focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.screen_stack:  # not while closing
            self._refresh_bindings_if_changed()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot apply to the selected row are shown dimmed (``on_key`` says why
        when one is pressed anyway)."""
        return None if self.why_not(action) else True

    def why_not(self, action: str) -> str | None:
        """Why ``action`` cannot apply to what is selected now (None: it can)."""
        focused = self.focused
        agent_id = focused.selected_key() if isinstance(focused, AgentsTable) else None
        goal_id = focused.selected_key() if isinstance(focused, GoalsTable) else None
        return why_not(
            self.model, action, task_id=self.selected_task(), agent_id=agent_id, goal_id=goal_id
        )

    def on_key(self, event: events.Key) -> None:
        """A dimmed key was pressed: say why it does nothing now."""
        active = self.screen.active_bindings.get(event.key)
        if active is not None and not active.enabled:
            reason = self.why_not(active.binding.action.removeprefix("app."))
            if reason:
                self.notify(reason, severity="warning", timeout=4)

    # -- selection --------------------------------------------------------------------------

    def selected_task(self) -> str | None:
        """The task the human points at: the open detail, else the focused table's row."""
        if isinstance(self.screen, TaskDetailScreen):
            return self.screen.task_id
        focused = self.focused
        if isinstance(focused, KeyedTable) and not isinstance(focused, AgentsTable | GoalsTable):
            return focused.selected_key()
        return None

    def select_task(self, task_id: str) -> bool:
        """Show the board with the cursor on ``task_id`` (filters are cleared if they hide it)."""
        self.main.query_one(TabbedContent).active = "tasks"
        board = self.main.query_one("#board", TaskPanel)
        if task_id not in self.model.tasks:
            return False
        states = BOARD_FILTERS[board.filter_index][1]
        if not any(t.id == task_id for t in self.model.board(states, board.text)):
            board.set_filter("all")
            board.text = ""
        board.refresh_from(self.model)
        board.table.focus()
        return board.table.select_key(task_id)

    def select_row(self, table_id: str, key: str) -> bool:
        """Show the tab of ``table_id`` with the cursor on ``key``."""
        tab = {"agents-table": "agents", "goals-table": "goals", "work-table": "work"}[table_id]
        self.main.query_one(TabbedContent).active = tab
        self.refresh_views()
        table = self.main.query_one(f"#{table_id}", KeyedTable)
        table.focus()
        return table.select_key(key)

    # -- doing ------------------------------------------------------------------------------

    async def _do(self, what: str, call: Awaitable[T]) -> T | None:
        """Await a hub call; any Claw Hub error becomes an error notification."""
        try:
            return await call
        except ClawHubError as exc:
            self.notify(f"{what}: {exc}", title="refused", severity="error", timeout=8)
        except (KeyError, ValueError) as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=8)
        return None

    def _live(self) -> GroupSession | None:
        if self.session is None:
            self.notify("not connected to a hub (read-only view)", severity="warning")
        return self.session

    def _task_or_warn(self) -> str | None:
        task_id = self.selected_task()
        if task_id is None:
            self.notify("select a task first (tab 1, arrows)", severity="warning")
        return task_id

    async def action_quit(self) -> None:
        """Leave the group (the hub records ``agent.left``; unfinished work goes back), then
        exit. Bounded: with the hub gone, the app still ends within seconds."""
        if self.session is not None and not self._leaving:
            self._leaving = True
            self.notify("leaving the group…", timeout=10)
            await self.session.stop()
        self.exit()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        if isinstance(self.screen, TaskDetailScreen):
            self.pop_screen()
        self.main.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def action_chat(self) -> None:
        """Show the chat and put the cursor in its input (Esc leaves it)."""
        self.action_tab("chat")
        self.main.query_one("#chat-input", Input).focus()

    async def action_sync(self) -> None:
        if (session := self._live()) is not None:
            await self._do("refresh", session.sync())

    def action_cycle_filter(self) -> None:
        board = self.main.query_one("#board", TaskPanel)
        board.cycle_filter()
        board.refresh_from(self.model)

    def action_search(self) -> None:
        self.main.query_one("#board", TaskPanel).start_search()

    async def action_open_task(self) -> None:
        task_id = self._task_or_warn()
        if task_id is None or isinstance(self.screen, TaskDetailScreen):
            return
        screen = TaskDetailScreen(task_id)
        await self.push_screen(screen)
        screen.refresh_from(self.model)
        if self.session is not None:
            await self._do("log", self.session.load_log(task_id))

    async def action_reload_log(self) -> None:
        task_id = self.selected_task()
        if task_id is not None and (session := self._live()) is not None:
            await self._do("log", session.load_log(task_id))

    def action_approve(self) -> None:
        self._decide(True)

    def action_reject(self) -> None:
        self._decide(False)

    def _decide(self, accept: bool) -> None:
        task_id = self._task_or_warn()
        if task_id is None:
            return
        task = self.model.tasks.get(task_id)
        if task is not None and task.state is not TaskState.NEEDS_HUMAN:
            self.notify(f"{task_id} is {task.state.value}: nothing waits for a decision")
            return
        verb, done = ("Approve", "approved") if accept else ("Reject", "rejected")

        async def decided(reason: object) -> None:
            if isinstance(reason, str) and (session := self._live()) is not None:
                status = await self._do(verb.lower(), session.decide(task_id, accept, reason))
                if status is not None:
                    self.notify(f"{task_id} {done}: now {status.state.value}")

        hint = "why (optional)" if accept else "why: the reworker reads this"
        self.push_screen(
            ReasonScreen(f"{verb} the result of {task_id}", hint, required=not accept), decided
        )

    async def action_take(self) -> None:
        task_id = self._task_or_warn()
        if task_id is None or (session := self._live()) is None:
            return
        status = await self._do("take", session.claim(task_id))
        if status is not None:
            self.notify(f"{task_id} offered to you ({status.state.value}); see tab 3")

    def action_reassign(self) -> None:
        task_id = self._task_or_warn()
        if task_id is None:
            return
        candidates = [
            (f"{a.profile.name} ({a.profile.id}, {self.model.activity(a)})", a.profile.id)
            for a in self.model.agent_list()
            if a.state == "online"
        ]

        async def chosen(choice: object) -> None:
            if isinstance(choice, Reassignment) and (session := self._live()) is not None:
                status = await self._do(
                    "reassign", session.reassign(task_id, choice.to, choice.reason)
                )
                if status is not None:
                    self.notify(f"{task_id} reassigned: now {status.state.value}")

        self.push_screen(ReassignScreen(task_id, candidates), chosen)

    def action_cancel_task(self) -> None:
        task_id = self._task_or_warn()
        if task_id is None:
            return

        async def confirmed(reason: object) -> None:
            if isinstance(reason, str) and (session := self._live()) is not None:
                status = await self._do("cancel", session.cancel(task_id, reason))
                if status is not None:
                    self.notify(f"{task_id} {status.state.value}")

        self.push_screen(
            ReasonScreen(f"Cancel {task_id}?", "why (Enter cancels the task)"), confirmed
        )

    def action_submit_result(self) -> None:
        task_id = self.selected_task()
        item = self.model.work.get(task_id) if task_id else None
        if item is None:
            self.notify("no work item of yours is selected (tab 3)", severity="warning")
            return

        async def written(text: object) -> None:
            if isinstance(text, str) and (session := self._live()) is not None:
                await self._do("submit result", session.complete(item.task_id, parse_output(text)))
                self.notify(f"result of {item.task_id} sent")

        self.push_screen(ResultScreen(item), written)

    async def action_hand_back(self) -> None:
        task_id = self.selected_task()
        if task_id is None or task_id not in self.model.work:
            self.notify("no work item of yours is selected (tab 3)", severity="warning")
            return
        if (session := self._live()) is not None:
            status = await self._do("hand back", session.hand_back(task_id))
            if status is not None:
                self.notify(f"{task_id} handed back")

    def _selected_agent(self) -> str | None:
        focused = self.focused
        if isinstance(focused, AgentsTable):
            return focused.selected_key()
        self.notify("select an agent first (tab 2)", severity="warning")
        return None

    async def action_pause_agent(self) -> None:
        agent_id = self._selected_agent()
        agent = self.model.agents.get(agent_id) if agent_id else None
        if agent is None or (session := self._live()) is None:
            return
        mode: AgentMode = "active" if agent.mode == "paused" else "paused"
        info = await self._do(mode, session.set_mode(agent.profile.id, mode))
        if info is not None:
            self.notify(f"{info.profile.name} is {info.mode}")

    async def action_drain_agent(self) -> None:
        agent_id = self._selected_agent()
        if agent_id is None or (session := self._live()) is None:
            return
        info = await self._do("drain", session.set_mode(agent_id, "draining"))
        if info is not None:
            self.notify(f"{info.profile.name} is draining")

    def action_new_task(self) -> None:
        async def submitted(spec: object) -> None:
            if isinstance(spec, TaskSpec) and (session := self._live()) is not None:
                task_id = await self._do("submit", session.submit(spec))
                if task_id is not None:
                    self.notify(f"submitted {task_id}")
                    self.select_task(task_id)

        self.push_screen(SubmitTaskScreen(), submitted)

    def action_new_goal(self) -> None:
        async def submitted(goal: object) -> None:
            if isinstance(goal, GoalSpec) and (session := self._live()) is not None:
                status = await self._do("submit goal", session.submit_goal(goal))
                if status is not None:
                    self.notify(f"goal {status.id}: {status.state}")

        self.push_screen(SubmitGoalScreen(), submitted)

    async def _plan(self, approve: bool) -> None:
        focused = self.focused
        goal_id = focused.selected_key() if isinstance(focused, GoalsTable) else None
        if goal_id is None or (session := self._live()) is None:
            return
        status = await self._do("plan", session.decide_plan(goal_id, approve))
        if status is not None:
            self.notify(f"goal {goal_id}: {status.state}")

    async def action_approve_plan(self) -> None:
        await self._plan(True)

    async def action_reject_plan(self) -> None:
        await self._plan(False)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "chat-input" or not event.value.strip():
            return
        if (session := self._live()) is not None:
            text = event.value.strip()
            event.input.value = ""
            first, _, rest = text.partition(" ")
            task_id = first[1:] if first.startswith("#") and rest.strip() else None
            if task_id is not None and task_id in self.model.tasks:
                text = rest.strip()
            else:
                task_id = None
            await self._do("chat", session.chat(text, task_id))
