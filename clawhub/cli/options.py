"""What every ``clawhub`` command shares: options, settings, the client runner, tables."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from protocols import AgentInfo, Event, GetTask, TaskStatus, subjects

from ..errors import HubError
from ..settings import HubSettings
from .client import call, connect, resolve_token, resolve_url

console = Console()
err = Console(stderr=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="NATS URL of the hub (default: CLAWHUB_NATS_URL or hub.json)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Hub data folder (default: ~/.clawhub).")
]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Claw Group (default: default).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def build_settings(**overrides: Any) -> HubSettings:
    """Build the settings once: environment (CLAWHUB_*) plus command-line overrides."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return HubSettings(**values)
    except ValidationError as exc:
        err.print(f"[red]bad setting:[/] {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def client_run(url: str | None, data_dir: Path | None, group: str | None, fn: Any) -> Any:
    settings = build_settings(data_dir=data_dir, group=group)
    try:
        target = resolve_url(settings, url)
    except HubError as exc:
        raise fail(str(exc)) from None

    async def go() -> Any:
        nc = await connect(target, resolve_token(settings))
        try:
            return await fn(nc, settings.group)
        finally:
            await nc.close()

    try:
        return asyncio.run(go())
    except HubError as exc:
        raise fail(str(exc)) from None


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


def parse_skills(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, _, level = item.partition("=")
        try:
            out[name.strip()] = float(level) if level else 0.0
        except ValueError:
            raise fail(f"bad --skill {item!r}: use name=level, e.g. python=0.5", 2) from None
    return out


async def wait_for(nc: Any, group: str, ids: list[str], timeout: float) -> list[TaskStatus]:
    """Poll until every task is terminal (the event stream is for the SDK's ``wait``)."""
    deadline = time.monotonic() + timeout
    while True:
        out = [
            await call(nc, subjects.api(group, subjects.API_TASK), GetTask(task_id=i), TaskStatus)
            for i in ids
        ]
        if all(t.state.terminal for t in out):
            return out
        if time.monotonic() > deadline:
            raise HubError(f"tasks not finished after {timeout:g}s")
        await asyncio.sleep(0.2)


def event_line(ev: Event) -> str:
    """One event as a log line."""
    when = time.strftime("%H:%M:%S", time.localtime(ev.ts))
    attempt = f"#{ev.attempt}" if ev.attempt else ""
    who = " ".join(x for x in (ev.task_id and ev.task_id + attempt, ev.agent_id) if x)
    return f"{ev.seq or '-':>6} {when} {ev.kind:<16} {who:<28} {ev.message}".rstrip()
