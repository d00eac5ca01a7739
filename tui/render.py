"""Pure rendering: table cells and the task detail as Rich renderables, from the model."""

from __future__ import annotations

import json

from pydantic import JsonValue
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from protocols import AgentInfo, Event, GoalStatus, TaskState, TaskStatus

from .model import Activity, ChatLine, GroupModel, WorkItem, age_text, skills_text

STATE_STYLE: dict[str, str] = {
    "pending": "dim",
    "ready": "yellow",
    "assigned": "cyan",
    "running": "bold cyan",
    "validating": "blue",
    "needs_human": "bold magenta",
    "done": "green",
    "failed": "bold red",
    "cancelled": "dim",
}

ACTIVITY_STYLE: dict[Activity, str] = {
    "idle": "green",
    "busy": "bold cyan",
    "stalled": "bold yellow",
    "away": "yellow",
    "lost": "bold red",
    "left": "dim",
}

OUTCOME_STYLE = {
    "done": "green",
    "running": "cyan",
    "lost": "yellow",
    "stalled": "yellow",
    "error": "yellow",
    "rejected": "yellow",
    "timed_out": "yellow",
    "revoked": "dim",
}

MODE_STYLE = {"active": "", "paused": "yellow", "draining": "magenta"}

AGENT_COLUMNS = (
    "Agent",
    "Kind",
    "Model",
    "Device",
    "Skills",
    "Load",
    "Beat",
    "State",
    "Mode",
    "Reliab.",
    "Done/Fail",
)
TASK_COLUMNS = ("State", "Task", "Title", "Skills", "Holder", "Try", "Progress", "Age")
WORK_COLUMNS = ("Task", "Try", "Title", "Skills", "Waiting", "Validation")
GOAL_COLUMNS = ("Goal", "State", "Text", "Tasks", "Cost", "Why it failed")


def state_text(state: TaskState | str) -> Text:
    """A task state, coloured."""
    value = state.value if isinstance(state, TaskState) else state
    return Text(value, style=STATE_STYLE.get(value, ""))


def json_text(value: JsonValue, limit: int = 4000) -> str:
    """Indented JSON (a plain string as is), cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, width: int = 60) -> str:
    """The first line of ``text``, cut to ``width``."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def agent_cells(model: GroupModel, agent: AgentInfo) -> list[RenderableType]:
    """One row of the agents table."""
    p = agent.profile
    activity = model.activity(agent)
    return [
        agent_label(model, agent),
        p.kind,
        p.model or "-",
        p.device,
        one_line(skills_text(p.skills), 40),
        f"{agent.load}/{p.capacity}",
        age_text(model.heartbeat_age(agent)),
        Text(activity, style=ACTIVITY_STYLE[activity]),
        Text(agent.mode, style=MODE_STYLE.get(agent.mode, "")),
        f"{agent.reliability:.2f}",
        f"{agent.completed}/{agent.failed}",
    ]


def agent_label(model: GroupModel, agent: AgentInfo) -> Text:
    """The participant's id (what every command takes), and its name too when it differs."""
    p = agent.profile
    label = Text(p.id, style="bold" if p.id == model.me else "")
    if p.name != p.id:
        label.append(f" ({p.name})", style="dim")
    return label


def task_cells(model: GroupModel, task: TaskStatus) -> list[RenderableType]:
    """One row of the task board."""
    progress = "" if task.progress is None else f"{task.progress:.0%}"
    if task.progress_message:
        progress = f"{progress} {one_line(task.progress_message, 24)}".strip()
    holder = model.agent_name(task.assigned_to) if task.assigned_to else ""
    if task.state is TaskState.NEEDS_HUMAN and task.history:
        holder = f"by {model.agent_name(task.history[-1].agent_id)}"
    return [
        state_text(task.state),
        task.id,
        one_line(task.spec.title, 48),
        one_line(skills_text(task.spec.skills), 28),
        holder,
        str(task.attempt) if task.attempt else "",
        progress,
        age_text(model.clock() - task.created_at),
    ]


def work_cells(model: GroupModel, item: WorkItem) -> list[RenderableType]:
    """One row of this human's work list."""
    steps = ", ".join(s.kind for s in item.spec.validation) or "-"
    return [
        item.task_id,
        str(item.attempt),
        one_line(item.spec.title, 48),
        one_line(skills_text(item.spec.skills), 28),
        age_text(model.clock() - item.received),
        steps,
    ]


def goal_cells(goal: GoalStatus) -> list[RenderableType]:
    """One row of the goals table."""
    style = {"awaiting_approval": "bold magenta", "done": "green", "failed": "bold red"}
    return [
        goal.id,
        Text(goal.state, style=style.get(goal.state, "cyan")),
        one_line(goal.spec.text, 60),
        f"{goal.tasks_done}/{goal.tasks_total}",
        f"${goal.usage.cost:.4f}",
        Text(one_line(goal.error, 60), style="red") if goal.error else "",
    ]


def goal_detail(goal: GoalStatus | None) -> Text:
    """Under the goals table: why the highlighted goal failed (or was cancelled), in full."""
    if goal is None or not goal.error:
        return Text("")
    text = Text("Why it failed: " if goal.state == "failed" else "Why: ", style="bold")
    return text.append(goal.error, style="red")


def event_text(model: GroupModel, event: Event) -> Text:
    """One event as a log line."""
    attempt = f"#{event.attempt}" if event.attempt else ""
    who = " ".join(x for x in (event.task_id and event.task_id + attempt, event.agent_id) if x)
    line = Text(f"{model.clock_text(event.ts)} ", style="dim")
    style = "bold red" if event.kind in ("agent.lost", "task.failed", "message.refused") else ""
    if event.kind.endswith((".stalled", ".revoked", ".retry", ".rejected")):
        style = "yellow"
    line.append(f"{event.kind:<16} ", style=style or "cyan")
    line.append(f"{who:<28} ")
    line.append(event.message)
    return line


def chat_text(model: GroupModel, line: ChatLine) -> Text:
    """One chat line."""
    text = Text(f"{model.clock_text(line.ts)} ", style="dim")
    mine = line.sender == model.me
    text.append(model.agent_name(line.sender), style="bold green" if mine else "bold cyan")
    if line.task_id:
        text.append(f" [{line.task_id}]", style="magenta")
    text.append(f": {line.text}")
    return text


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _attempts_table(model: GroupModel, task: TaskStatus) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("#", "Holder", "Outcome", "Took", "Reason", "Top candidates"):
        table.add_column(column, overflow="fold")
    for att in task.history:
        took = ""
        if att.started_at is not None and att.ended_at is not None:
            took = f"{att.ended_at - att.started_at:.1f}s"
        top = ", ".join(f"{model.agent_name(c.agent_id)} {c.score:.2f}" for c in att.why)
        table.add_row(
            str(att.attempt),
            model.agent_name(att.agent_id),
            Text(att.outcome, style=OUTCOME_STYLE.get(att.outcome, "")),
            took,
            att.reason,
            top or "-",
        )
    return table


def _why_table(model: GroupModel, task: TaskStatus) -> Table:
    """The matcher's scores behind each attempt (score = 0.5 skill + 0.2 free capacity +
    0.2 reliability + 0.1 cheapness)."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("#", "Candidate", "Score", "Skill", "Free", "Reliab.", "Cheap"):
        table.add_column(column, justify="left" if column == "Candidate" else "right")
    for att in task.history:
        for c in att.why:
            chosen = c.agent_id == att.agent_id
            table.add_row(
                str(att.attempt),
                Text(
                    model.agent_name(c.agent_id) + (" ◀ chosen" if chosen else ""),
                    style="bold" if chosen else "",
                ),
                f"{c.score:.2f}",
                f"{c.skill:.2f}",
                f"{c.load:.2f}",
                f"{c.reliability:.2f}",
                f"{c.cost:.2f}",
            )
    return table


def task_detail(model: GroupModel, task: TaskStatus) -> RenderableType:
    """Everything about one task: spec, attempts and why, progress, verdicts, output, log."""
    spec = task.spec
    parts: list[RenderableType] = []
    head = Text()
    head.append(f"{task.id}  ", style="bold")
    head.append_text(state_text(task.state))
    head.append(f"  attempt {task.attempt} · failures {task.failures}/{spec.max_attempts}")
    if task.assigned_to:
        head.append(f" · held by {model.agent_name(task.assigned_to)}")
    parts.append(head)
    parts.append(Text(spec.title, style="bold"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("skills", skills_text(spec.skills) or "-")
    facts.add_row("priority", str(spec.priority))
    facts.add_row("depends on", ", ".join(spec.depends_on) or "-")
    steps = [s.kind + (f"({s.skill})" if s.kind == "reviewer" else "") for s in spec.validation]
    facts.add_row("validation", ", ".join(steps) or ("schema" if spec.output_schema else "-"))
    facts.add_row("rework", spec.rework)
    if spec.acceptance:
        facts.add_row("acceptance", "; ".join(spec.acceptance))
    if spec.goal:
        facts.add_row("goal", spec.goal)
    if task.review_of:
        facts.add_row("reviews", task.review_of)
    if spec.parent:
        up = model.tasks.get(spec.parent)
        facts.add_row("parent", spec.parent + (f" ({up.state.value})" if up else ""))
    facts.add_row("created", model.clock_text(task.created_at))
    if task.error:
        facts.add_row("error", Text(task.error, style="red"))
    parts.append(facts)
    if spec.instructions:
        parts += [_section("Instructions"), Text(spec.instructions)]
    if spec.input is not None:
        parts += [_section("Input"), Text(json_text(spec.input))]
    if task.progress is not None or task.progress_message:
        fraction = "" if task.progress is None else f"{task.progress:.0%} "
        parts += [_section("Progress"), Text(fraction + (task.progress_message or ""))]
    if task.children:
        parts += [_section("Delegated"), *_children(model, task, 1)]
    parts += [_section("Attempts"), _attempts_table(model, task) if task.history else Text("-")]
    if any(att.why for att in task.history):
        parts += [_section("Why each was chosen"), _why_table(model, task)]
    if task.verdicts:
        parts.append(_section("Verdicts"))
        for v in task.verdicts:
            line = Text(f"#{v.attempt} {v.step} by {model.agent_name(v.by)}: ")
            line.append("accepted" if v.accepted else "rejected", "green" if v.accepted else "red")
            if v.reasons:
                line.append(f" — {v.reasons}")
            parts.append(line)
    if task.output is not None:
        judged = task.state in (TaskState.VALIDATING, TaskState.NEEDS_HUMAN)
        title = "Output (waiting for a decision)" if judged else "Output"
        parts += [_section(title), Text(json_text(task.output))]
    if task.usage.calls:
        u = task.usage
        parts += [
            _section("Usage"),
            Text(
                f"{u.calls} calls · {u.prompt_tokens}+{u.completion_tokens} tokens · "
                f"${u.cost:.4f} · {', '.join(u.models)}"
            ),
        ]
    events = model.task_events(task.id)
    parts.append(_section("Log"))
    parts += [event_text(model, e) for e in events] or [Text("(no events loaded)", style="dim")]
    return Group(*parts)


def _children(model: GroupModel, task: TaskStatus, depth: int) -> list[Text]:
    """The tree of the tasks ``task`` delegated: one line each, with its state and agent."""
    lines: list[Text] = []
    for child_id in task.children:
        kid = model.tasks.get(child_id)
        line = Text("  " * depth + f"└ {child_id}  ")
        if kid is None:
            lines.append(line.append("(not loaded)", style="dim"))
            continue
        line.append_text(state_text(kid.state))
        who = kid.assigned_to or next(
            (h.agent_id for h in reversed(kid.history) if h.outcome == "done"), None
        )
        line.append(f"  {model.agent_name(who) if who else '-'}  {kid.spec.title}")
        lines.append(line)
        if depth < 10:
            lines += _children(model, kid, depth + 1)
    return lines


def work_detail(item: WorkItem) -> RenderableType:
    """What a human needs to do a work item."""
    parts: list[RenderableType] = [Text(item.spec.title, style="bold")]
    if item.spec.instructions:
        parts.append(Text(item.spec.instructions))
    if item.spec.input is not None:
        parts += [Text("input:", style="dim"), Text(json_text(item.spec.input, 1500))]
    if item.dependency_outputs:
        parts += [Text("from dependencies:", style="dim")]
        parts += [Text(f"{k}: {json_text(v, 600)}") for k, v in item.dependency_outputs.items()]
    if item.spec.acceptance:
        parts.append(Text("acceptance: " + "; ".join(item.spec.acceptance), style="italic"))
    for verdict in item.feedback:
        line = Text(f"rejected (attempt {verdict.attempt}, {verdict.by}): ", style="yellow")
        parts.append(line.append(verdict.reasons, style=""))
    return Group(*parts)
