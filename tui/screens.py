"""Screens over the main one: a task's detail, the help, and the small forms (modals)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import JsonValue, ValidationError
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, Footer, Header, Input, Label, Select, Static, TextArea

from protocols import GoalSpec, TaskSpec, ValidationStep

from .model import GroupModel, WorkItem, parse_skills
from .render import task_detail, work_detail

#: Every key, where it works and what it does: the help screen and docs/humans.md show this.
KEYMAP: tuple[tuple[str, str, str], ...] = (
    ("anywhere", "?", "this help"),
    ("anywhere", "1 … 6", "tabs: Tasks, Agents, My work, Events, Chat, Goals"),
    ("anywhere", "n", "submit a new task (a human may approve its result)"),
    ("anywhere", "G", "submit a goal for the coordinator to plan"),
    ("anywhere", "c", "chat: write in the group's channel (Enter sends, Esc leaves)"),
    ("anywhere", "ctrl+r", "read everything from the hub again"),
    ("anywhere", "q", "quit (your unfinished work goes back to the hub)"),
    ("task board", "enter", "the task's detail: spec, attempts and why, verdicts, output, log"),
    ("task board", "a / r", "approve / reject (with a reason) a result waiting for a human"),
    ("task board", "t", "take a ready task: the hub offers it to you"),
    ("task board", "g", "reassign: take it from its holder, offer it again (to whom you pick)"),
    ("task board", "x", "cancel the task"),
    ("task board", "f", "cycle the state filter: all, open, needs_human, ready, running, ..."),
    ("task board", "/", "search by id, title, skill or holder (Esc clears)"),
    ("task detail", "a r t g x", "as on the board; s submits your result; l reloads the log"),
    ("task detail", "end", "the end of the log: the view then follows new lines"),
    ("task detail", "escape", "back"),
    ("agents", "p", "pause an agent (no new work) or resume it"),
    ("agents", "d", "drain an agent: no new work, it leaves when done"),
    ("my work", "s", "submit your result (JSON if it parses, else text)"),
    ("my work", "h", "hand the task back without a failure"),
    ("goals", "a / r", "approve / reject the plan of a goal awaiting approval"),
)


class HelpScreen(ModalScreen[None]):
    """The key bindings."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", key_display="?"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 96; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("where", style="dim", no_wrap=True)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("what it does")
        for where, key, what in KEYMAP:
            table.add_row(where, key, what)
        with Vertical():
            yield Label(Text("Claw Hub TUI: keys", style="bold"))
            yield Static(table)
            yield Label(Text("Esc or ? closes this help.", style="dim"))


class TaskDetailScreen(Screen[None]):
    """One task, in full; refreshed as the model changes."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "app.approve", "Approve"),
        Binding("r", "app.reject", "Reject"),
        Binding("t", "app.take", "Take"),
        Binding("s", "app.submit_result", "Submit result"),
        Binding("g", "app.reassign", "Reassign"),
        Binding("x", "app.cancel_task", "Cancel"),
        Binding("l", "app.reload_log", "Reload log"),
    ]
    DEFAULT_CSS = """
    TaskDetailScreen VerticalScroll { padding: 0 1; }
    """

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self._shown: object = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-scroll"):
            yield Static(id="detail")
        yield Footer()

    def refresh_from(self, model: GroupModel) -> None:
        """Show the task as the model has it. It opens at the top (the spec); scrolled to
        the end (``end``), the view follows new log lines like ``tail -f``; scrolled up, it
        stays put."""
        task = model.tasks.get(self.task_id)
        shown = (task, len(model.task_events(self.task_id)))
        if shown == self._shown:
            return  # nothing new: no redraw
        try:
            scroll = self.query_one("#detail-scroll", VerticalScroll)
            detail = self.query_one("#detail", Static)
        except NoMatches:
            return  # pushed but not composed yet (the next refresh draws it), or closing
        self._shown = shown
        following = 0 < scroll.max_scroll_y <= scroll.scroll_y
        body = task_detail(model, task) if task else Text(f"no task {self.task_id}", "red")
        detail.update(body)
        if following:
            self.call_after_refresh(scroll.scroll_end, animate=False)


class _Form(ModalScreen[object]):
    """Base of the small forms: Esc cancels, an error line, a centred box."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    _Form { align: center middle; }
    _Form > Vertical { width: 90; height: auto; max-height: 90%; border: thick $primary;
        background: $surface; padding: 0 1; }
    _Form .error { color: $error; height: auto; }
    _Form TextArea { height: 8; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, message: str) -> None:
        self.query_one(".error", Label).update(message)


class ReasonScreen(_Form):
    """Ask for a reason (or any one line); dismisses with the text, or None."""

    def __init__(self, title: str, placeholder: str = "", *, required: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text, style="bold"))
            yield Input(placeholder=self.placeholder, id="reason")
            yield Label("", classes="error")
            yield Label(Text("Enter confirms · Esc cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.required and not event.value.strip():
            self.show_error("a reason is needed")
            return
        self.dismiss(event.value.strip())


@dataclass
class Reassignment:
    """What the reassign form returns."""

    to: str | None
    reason: str


class ReassignScreen(_Form):
    """Pick who gets a task next (or let the matcher pick) and say why."""

    def __init__(self, task_id: str, candidates: list[tuple[str, str]]) -> None:
        super().__init__()
        self.task_id = task_id
        self.candidates = candidates

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Reassign {self.task_id}", style="bold"))
            yield Select(self.candidates, prompt="the matcher picks", id="to")
            yield Input(placeholder="why (optional); Enter confirms", id="reason")
            yield Label("", classes="error")
            yield Label(Text("Enter confirms · Esc cancels", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = self.query_one("#to", Select).value
        to = value if isinstance(value, str) else None
        self.dismiss(Reassignment(to=to, reason=event.value.strip()))


class SubmitTaskScreen(_Form):
    """A new task: title, skills, instructions, input, and whether a human approves it."""

    BINDINGS = [Binding("ctrl+s", "submit", "Submit")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("New task", style="bold"))
            yield Input(placeholder="title", id="title")
            yield Input(placeholder="skills: python=0.7, review=0.5", id="skills")
            yield TextArea(id="instructions", placeholder="instructions")
            yield Input(placeholder="input (JSON or text, optional)", id="input")
            yield Checkbox("a human approves the result", value=True, id="human")
            yield Label("", classes="error")
            yield Label(Text("ctrl+s submits · Tab moves · Esc cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        title = self.query_one("#title", Input).value.strip()
        raw_input = self.query_one("#input", Input).value.strip()
        try:
            spec = TaskSpec(
                title=title,
                skills=parse_skills(self.query_one("#skills", Input).value),
                instructions=self.query_one("#instructions", TextArea).text,
                input=parse_output(raw_input) if raw_input else None,
                validation=[ValidationStep(kind="human")]
                if self.query_one("#human", Checkbox).value
                else [],
            )
        except (ValueError, ValidationError) as exc:
            self.show_error(_first_error(exc))
            return
        self.dismiss(spec)


class SubmitGoalScreen(_Form):
    """A goal in words, for the coordinator model to plan."""

    BINDINGS = [Binding("ctrl+s", "submit", "Submit")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("New goal", style="bold"))
            yield TextArea(id="goal", placeholder="what should the group achieve?")
            yield Checkbox("I approve the plan before it runs", value=True, id="approve")
            yield Checkbox("a human approves every result", value=False, id="human")
            yield Label("", classes="error")
            yield Label(Text("ctrl+s submits · Esc cancels", style="dim"))

    def action_submit(self) -> None:
        try:
            goal = GoalSpec(
                text=self.query_one("#goal", TextArea).text.strip(),
                approve_plan=self.query_one("#approve", Checkbox).value,
                validation=[ValidationStep(kind="human")]
                if self.query_one("#human", Checkbox).value
                else [],
            )
        except ValidationError as exc:
            self.show_error(_first_error(exc))
            return
        self.dismiss(goal)


class ResultScreen(_Form):
    """Write the result of a work item; dismisses with the text."""

    BINDINGS = [Binding("ctrl+s", "submit", "Submit")]

    def __init__(self, item: WorkItem) -> None:
        super().__init__()
        self.item = item

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Result of {self.item.task_id}", style="bold"))
            yield Static(work_detail(self.item))
            yield TextArea(id="result", placeholder="your result: JSON, or plain text")
            yield Label("", classes="error")
            yield Label(Text("ctrl+s submits · Esc cancels", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#result", TextArea).focus()

    def action_submit(self) -> None:
        text = self.query_one("#result", TextArea).text
        if not text.strip():
            self.show_error("the result is empty")
            return
        self.dismiss(text)


def parse_output(text: str) -> JsonValue:
    """JSON if ``text`` parses as JSON, else the text itself."""
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return str(exc)
