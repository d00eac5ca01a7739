"""What the commands print, and where: the consoles, and the tables and lines of agents,
tasks, goals and events."""

from __future__ import annotations

import json
import re
import time

from rich.console import Console
from rich.table import Table

from protocols import AgentInfo, Event, GoalStatus, TaskStatus

#: Where results go (stdout), and where errors and notes go (stderr).
console = Console()
err = Console(stderr=True)


def _ago(ts: float) -> str:
    delta = max(0.0, time.time() - ts)
    return f"{delta:.0f}s ago" if delta < 120 else f"{delta / 60:.0f}m ago"


def agents_table(agents: list[AgentInfo]) -> Table:
    """A table of participants."""
    table = Table(title="Agents")
    for col in (
        "id",
        "kind",
        "state",
        "skills",
        "model",
        "device",
        "load",
        "reliability",
        "done",
        "failed",
        "seen",
    ):
        table.add_column(col)
    for a in agents:
        p = a.profile
        skills = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p.skills.items()))
        table.add_row(
            p.id,
            p.kind,
            a.state,
            skills,
            p.model or "plain code",
            p.device,
            f"{a.load}/{p.capacity}",
            f"{a.reliability:.2f}",
            str(a.completed),
            str(a.failed),
            _ago(a.last_seen),
        )
    return table


def attempts_text(task: TaskStatus) -> str:
    """A task's attempts in one line: ``1 coder:stalled, 2 writer:done``."""
    return (
        ", ".join(
            f"{h.attempt} {h.agent_id}:{h.outcome}"
            for h in task.history
            if h.outcome not in ("declined", "no_reply")
        )
        or "-"
    )


def tasks_table(tasks: list[TaskStatus], title: str = "Tasks") -> Table:
    """A table of tasks with their attempts and the last reason."""
    table = Table(title=title)
    for col in ("id", "title", "state", "agent", "attempts", "note"):
        table.add_column(col, overflow="fold")
    for t in tasks:
        last = next((h for h in reversed(t.history) if h.reason), None)
        note = t.error or (last.reason if last else "") or (t.progress_message or "")
        agent = t.assigned_to or next(
            (h.agent_id for h in reversed(t.history) if h.outcome == "done"), ""
        )
        table.add_row(t.id, t.spec.title, t.state.value, agent, attempts_text(t), note[:80])
    return table


#: Most tasks of a delegation tree ``clawhub show`` reads.
TREE_LIMIT = 200


def tree_lines(t: TaskStatus, known: dict[str, TaskStatus], depth: int = 1) -> list[str]:
    """The tasks ``t`` delegated, one line each, indented by level: ``id state agent title``."""
    lines: list[str] = []
    for child_id in t.children:
        kid = known.get(child_id)
        if kid is None:
            lines.append("  " * depth + f"└ {child_id} …")
            continue
        agent = kid.assigned_to or next(
            (h.agent_id for h in reversed(kid.history) if h.outcome == "done"), "-"
        )
        note = f"  ({kid.error[:80]})" if kid.error else ""
        lines.append(
            "  " * depth + f"└ {kid.id}  {kid.state.value}  {agent}  {kid.spec.title}{note}"
        )
        if depth < 10:
            lines += tree_lines(kid, known, depth + 1)
    return lines


def print_task(t: TaskStatus, tree: dict[str, TaskStatus] | None = None) -> None:
    """One task in full: spec, attempts and why each agent was chosen, verdicts, output;
    with ``tree`` (its parent and descendants by id), the delegation tree."""
    console.print(f"[bold]{t.id}[/] {t.spec.title}  [cyan]{t.state.value}[/]")
    tree = tree or {}
    if t.spec.parent:
        up = tree.get(t.spec.parent)
        console.print(f"  parent: {t.spec.parent}" + (f" ({up.state.value})" if up else ""))
    if t.children:
        console.print(f"  delegated ({len(t.children)}):", markup=False)
        for line in tree_lines(t, tree):
            console.print("  " + line, markup=False, highlight=False)
    if t.spec.instructions:
        console.print(f"  instructions: {t.spec.instructions[:300]}")
    skills = ", ".join(f"{k}≥{v:g}" for k, v in t.spec.skills.items()) or "-"
    steps = ", ".join(s.kind for s in t.spec.validation) or "-"
    console.print(f"  skills: {skills}   validation: {steps}   attempts: {attempts_text(t)}")
    for h in t.history:
        why = ", ".join(f"{w.agent_id} {w.score:.2f}" for w in h.why)
        console.print(
            f"  #{h.attempt} {h.agent_id}: {h.outcome}"
            + (f" ({h.reason})" if h.reason else "")
            + (f"  chosen among: {why}" if why else "")
        )
    for v in t.verdicts:
        mark = "[green]accepted[/]" if v.accepted else "[red]rejected[/]"
        console.print(f"  verdict #{v.attempt} {v.step} by {v.by}: {mark} {v.reasons[:200]}")
    if t.usage.calls or t.usage.cost:
        console.print(f"  usage: {t.usage.total_tokens} tokens, ${t.usage.cost:.4f}")
    if t.error:
        console.print(f"  error: {t.error}")
    if t.output is not None:
        console.print("  output: " + json.dumps(t.output, ensure_ascii=False)[:2000])


def goal_table(goals: list[GoalStatus]) -> Table:
    """A table of goals."""
    table = Table(title="Goals")
    for col in ("id", "state", "progress", "spend", "goal", "note"):
        table.add_column(col, overflow="fold")
    for g in goals:
        progress = f"{g.tasks_done}/{g.tasks_total}" + (
            f" ({g.tasks_failed} failed)" if g.tasks_failed else ""
        )
        budget = f" of ${g.spec.budget:g}" if g.spec.budget is not None else ""
        table.add_row(
            g.id,
            g.state,
            progress,
            f"${g.usage.cost:.4f}{budget}",
            g.spec.text[:60],
            (g.error or "")[:80],
        )
    return table


def print_goal(g: GoalStatus) -> None:
    """One goal: its row, its plan, its error or deliverable."""
    console.print(goal_table([g]))
    if g.plan is not None:
        for t in g.plan.tasks:
            deps = f" ← {', '.join(t.depends_on)}" if t.depends_on else ""
            skills = ", ".join(f"{k}≥{v:g}" for k, v in t.skills.items())
            console.print(f"  {t.id}: {t.title} [{skills}]{deps}")
    if g.error:
        console.print(f"[red]{g.state}:[/] {g.error}", soft_wrap=True)
    if g.state == "done":
        console.print("deliverable: " + json.dumps(g.deliverable, ensure_ascii=False)[:4000])


def event_line(ev: Event) -> str:
    """One event as a log line."""
    when = time.strftime("%H:%M:%S", time.localtime(ev.ts))
    attempt = f"#{ev.attempt}" if ev.attempt else ""
    who = " ".join(x for x in (ev.task_id and ev.task_id + attempt, ev.agent_id) if x)
    return f"{ev.seq or '-':>6} {when} {ev.kind:<16} {who:<28} {ev.message}".rstrip()


def verdict_text(step: str, by: str, accepted: bool, reasons: str = "") -> str:
    """``rejected by critic (reviewer): reasons``; the step is left out when ``by`` names it
    already (``by schema``, the demo's agent called ``reviewer``)."""
    who = by if step in by else f"{by} ({step})"
    mark = "accepted" if accepted else "rejected"
    return f"{mark} by {who}" + (f": {reasons}" if reasons else "")


def feed_line(ev: Event) -> str:
    """One event for a live feed (``clawhub demo``): kind, task (or agent), the agent when
    the message does not name it already, the message. No empty field says ``None``."""
    message = ev.message
    data = ev.data
    if ev.kind == "task.verdict" and isinstance(data.get("step"), str):
        message = verdict_text(
            str(data["step"]),
            str(data.get("by") or "?"),
            bool(data.get("accepted")),
            str(data.get("reasons") or ""),
        )
    parts = [ev.kind.ljust(17)]
    if ev.task_id:
        parts.append(ev.task_id)
    if ev.agent_id and not re.search(rf"(?<![\w-]){re.escape(ev.agent_id)}(?![\w-])", message):
        parts.append(ev.agent_id)
    parts.append(message)
    return " ".join(p for p in parts if p).rstrip()
