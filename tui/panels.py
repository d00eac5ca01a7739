"""The panels of the main screen: agents, tasks, my work, events, chat, goals.

Each panel reads the ``GroupModel`` in ``refresh_from`` and never does I/O; keys that act
(approve, take, pause...) are bound here to the app's actions (``app.approve``...), which
find the selected row through ``KeyedTable.selected_key``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Input, RichLog, Static

from .model import BOARD_FILTERS, GroupModel
from .render import (
    AGENT_COLUMNS,
    GOAL_COLUMNS,
    TASK_COLUMNS,
    WORK_COLUMNS,
    agent_cells,
    chat_text,
    event_text,
    goal_cells,
    goal_detail,
    state_text,
    task_cells,
    work_cells,
    work_detail,
)


class Refresh(Message):
    """A panel asks the app to redraw the panels from the model (a filter changed)."""


class Display(Static):
    """A ``Static`` that redraws only when what it shows changed: each ``update`` lays the
    whole screen out again, the main cost of an idle refresh."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: object = None

    def show(self, content: RenderableType, key: object = None) -> None:
        """Show ``content``; ``key`` (default: the content itself, for ``Text``) says
        whether it is new."""
        key = content if key is None else key
        if self._key is None or key != self._key:
            self._key = key
            self.update(content)


class KeyedTable(DataTable[RenderableType]):
    """A row-cursor table whose rows have string keys and are synced in place."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._keys: list[str] = []

    def on_mount(self) -> None:
        for label in self.COLUMNS:
            self.add_column(label, key=label)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def select_key(self, key: str) -> bool:
        """Move the cursor to the row ``key``; False if there is none."""
        if key not in self._keys:
            return False
        self.move_cursor(row=self._keys.index(key), animate=False)
        return True

    def sync(self, rows: Sequence[tuple[str, Sequence[RenderableType]]]) -> None:
        """Show exactly ``rows``: cells update in place; the cursor stays on its key."""
        keys = [key for key, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                for label, cell in zip(self.COLUMNS, cells, strict=True):
                    if self.get_cell(key, label) != cell:
                        self.update_cell(key, label, cell)
            return
        selected = self.selected_key()
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)
        elif keys:
            self.move_cursor(row=min(self.cursor_row, len(keys) - 1), animate=False)

    def cell_at(self, row: int, column: int) -> RenderableType:
        """The cell at (row, column)."""
        return self.get_cell_at(Coordinate(row, column))


class AgentsTable(KeyedTable):
    """The participants."""

    COLUMNS = AGENT_COLUMNS
    BINDINGS = [
        Binding("p", "app.pause_agent", "Pause/resume"),
        Binding("d", "app.drain_agent", "Drain"),
    ]

    def refresh_from(self, model: GroupModel) -> None:
        self.sync([(a.profile.id, agent_cells(model, a)) for a in model.agent_list()])


class TaskTable(KeyedTable):
    """The tasks shown on the board."""

    COLUMNS = TASK_COLUMNS
    BINDINGS = [
        Binding("enter", "app.open_task", "Detail"),
        Binding("a", "app.approve", "Approve"),
        Binding("r", "app.reject", "Reject"),
        Binding("t", "app.take", "Take"),
        Binding("g", "app.reassign", "Reassign"),
        Binding("x", "app.cancel_task", "Cancel"),
        Binding("f", "app.cycle_filter", "Filter"),
        Binding("slash", "app.search", "Search", key_display="/"),
    ]


class TaskPanel(Vertical):
    """The tasks tab: counts by state, the filter in use, a search box and the ``TaskTable``."""

    DEFAULT_CSS = """
    TaskPanel #board-summary { height: 1; padding: 0 1; }
    TaskPanel #board-search { display: none; }
    TaskPanel.searching #board-search { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter_index = 0
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Display(id="board-summary")
        yield Input(
            placeholder="search: id, title, skill or holder (Enter keeps, Esc clears)",
            id="board-search",
        )
        yield TaskTable(id="tasks-table")

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    @property
    def filter_name(self) -> str:
        return BOARD_FILTERS[self.filter_index][0]

    def cycle_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(BOARD_FILTERS)

    def set_filter(self, name: str) -> None:
        names = [n for n, _ in BOARD_FILTERS]
        self.filter_index = names.index(name)

    def refresh_from(self, model: GroupModel) -> None:
        name, states = BOARD_FILTERS[self.filter_index]
        tasks = model.board(states, self.text)
        summary = Text()
        for state, count in model.counts().items():
            summary.append_text(state_text(state))
            summary.append(f" {count}  ")
        summary.append(f"{'│ ' if len(summary) else ''}filter: {name}", style="bold")
        if self.text:
            summary.append(f" · search: {self.text!r}", style="bold")
        summary.append(f" · {len(tasks)} shown", style="dim")
        self.query_one("#board-summary", Display).show(summary)
        self.table.sync([(t.id, task_cells(model, t)) for t in tasks])

    def on_input_changed(self, event: Input.Changed) -> None:
        self.text = event.value
        self.post_message(Refresh())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def key_escape(self) -> None:
        search = self.query_one("#board-search", Input)
        if search.has_focus:
            search.value = ""
            self.remove_class("searching")
            self.table.focus()

    def start_search(self) -> None:
        self.add_class("searching")
        self.query_one("#board-search", Input).focus()


class WorkTable(KeyedTable):
    """This human's work items."""

    COLUMNS = WORK_COLUMNS
    BINDINGS = [
        Binding("s", "app.submit_result", "Submit result"),
        Binding("h", "app.hand_back", "Hand back"),
        Binding("enter", "app.open_task", "Detail"),
    ]


class WorkPanel(Vertical):
    """Tasks offered to this human: what to do, and the keys to finish them."""

    DEFAULT_CSS = """
    WorkPanel WorkTable { height: 1fr; }
    WorkPanel #work-detail { height: 2fr; border-top: solid $primary; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield WorkTable(id="work-table")
        with VerticalScroll(id="work-detail"):
            yield Display(id="work-text")

    @property
    def table(self) -> WorkTable:
        return self.query_one(WorkTable)

    def refresh_from(self, model: GroupModel) -> None:
        items = model.my_work()
        self.table.sync([(w.task_id, work_cells(model, w)) for w in items])
        key = self.table.selected_key()
        item = model.work.get(key) if key else None
        text: RenderableType = (
            work_detail(item)
            if item
            else Text(
                "Nothing offered to you. Take a ready task from the board with t, "
                "or wait for the hub to offer you one that fits your skills.",
                style="dim",
            )
        )
        shown = (item.task_id, item.attempt, len(item.feedback)) if item else "nothing"
        self.query_one("#work-text", Display).show(text, shown)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(Refresh())


class GoalsTable(KeyedTable):
    """Goals and their plans."""

    COLUMNS = GOAL_COLUMNS
    BINDINGS = [
        Binding("a", "app.approve_plan", "Approve plan"),
        Binding("r", "app.reject_plan", "Reject plan"),
    ]

    def refresh_from(self, model: GroupModel) -> None:
        self.sync([(g.id, goal_cells(g)) for g in model.goal_list()])


class GoalsPanel(Vertical):
    """The goals tab: the ``GoalsTable`` and, under it, why the highlighted goal failed."""

    DEFAULT_CSS = """
    GoalsPanel GoalsTable { height: 1fr; }
    GoalsPanel #goal-detail { height: auto; max-height: 8; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield GoalsTable(id="goals-table")
        yield Display(id="goal-detail")

    @property
    def table(self) -> GoalsTable:
        return self.query_one(GoalsTable)

    def refresh_from(self, model: GroupModel) -> None:
        self.table.refresh_from(model)
        key = self.table.selected_key()
        goal = model.goals.get(key) if key else None
        self.query_one("#goal-detail", Display).show(goal_detail(goal))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(Refresh())


class EventsLog(RichLog):
    """The group's event stream (newest at the bottom)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=False, markup=False, max_lines=2000)
        self.shown = 0

    def refresh_from(self, model: GroupModel) -> None:
        new = min(model.events_added - self.shown, len(model.events))
        if new > 0:
            for event in list(model.events)[-new:]:
                self.write(event_text(model, event))
        self.shown = model.events_added


class ChatPanel(Vertical):
    """The shared channel: humans and agents post here; Enter sends."""

    DEFAULT_CSS = """
    ChatPanel RichLog { height: 1fr; }
    ChatPanel Input { dock: bottom; }
    """

    BINDINGS = [Binding("escape", "leave_input", "Leave the input", show=False)]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown = 0

    def action_leave_input(self) -> None:
        self.query_one("#chat-log", RichLog).focus()

    def compose(self) -> ComposeResult:
        yield RichLog(id="chat-log", wrap=True, markup=False, max_lines=2000)
        yield Input(
            placeholder="Say something to the group; #task-id first tags a task "
            "(Enter sends, Esc leaves)",
            id="chat-input",
        )

    def refresh_from(self, model: GroupModel) -> None:
        log = self.query_one("#chat-log", RichLog)
        new = min(model.chat_added - self.shown, len(model.chat))
        if new > 0:
            for line in list(model.chat)[-new:]:
                log.write(chat_text(model, line))
        self.shown = model.chat_added
