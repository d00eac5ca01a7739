"""The ``clawhub`` command: run a hub, talk to a running one, run the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from protocols import (
    AgentInfo,
    AgentList,
    CancelTask,
    Event,
    EventList,
    GetTask,
    ListAgents,
    ListEvents,
    ListTasks,
    ProtocolError,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskSpec,
    TaskState,
    TaskStatus,
    decode,
    message_schemas,
    render,
    subjects,
)

from .client import call, connect, resolve_url
from .errors import HubError
from .settings import HubSettings

app = typer.Typer(
    name="clawhub",
    help="Claw Hub: the open coordination hub for groups of AI agents and humans.",
    no_args_is_help=True,
    add_completion=False,
)
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


def _settings(**overrides: Any) -> HubSettings:
    """Build the settings once: environment (CLAWHUB_*) plus command-line overrides."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return HubSettings(**values)
    except ValidationError as exc:
        err.print(f"[red]bad setting:[/] {exc}")
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def up(
    nats_url: Annotated[
        str | None,
        typer.Option("--nats-url", help="Use this NATS server instead of embedding one."),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port of the embedded nats-server (0 = free).")
    ] = None,
    store_url: Annotated[
        str | None, typer.Option("--store-url", help="Store URL (sqlite:///... postgresql://...).")
    ] = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log more.")] = False,
) -> None:
    """Run the hub (embedded nats-server + SQLite unless configured) until Ctrl-C."""
    settings = _settings(
        nats_url=nats_url, nats_port=port, store_url=store_url, data_dir=data_dir, group=group
    )
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from .hub import Hub  # noqa: PLC0415 - the server half loads only when serving

    async def serve() -> None:
        hub = Hub(settings)
        await hub.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"[bold green]Claw Hub[/] {hub.hub_id} serving group [bold]{hub.group}[/]")
        console.print(f"  NATS   {hub.url}" + ("  (embedded)" if hub.embedded else ""))
        console.print(f"  store  {hub.store.display_url}")
        console.print(f"  data   {settings.data_dir}")
        console.print("  agents join with: Agent(...).run(" + repr(hub.url) + ")")
        console.print("  Ctrl-C to stop")
        try:
            await stop.wait()
        finally:
            await hub.stop()
            console.print("hub stopped")

    try:
        asyncio.run(serve())
    except HubError as exc:
        raise _fail(str(exc)) from None


def _client_run(url: str | None, data_dir: Path | None, group: str | None, fn: Any) -> Any:
    settings = _settings(data_dir=data_dir, group=group)
    try:
        target = resolve_url(settings, url)
    except HubError as exc:
        raise _fail(str(exc)) from None

    async def go() -> Any:
        nc = await connect(target)
        try:
            return await fn(nc, settings.group)
        finally:
            await nc.close()

    try:
        return asyncio.run(go())
    except HubError as exc:
        raise _fail(str(exc)) from None


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


@app.command()
def agents(
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include lost and departed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the participants of a running hub."""

    async def fn(nc: Any, g: str) -> AgentList:
        return await call(
            nc, subjects.api(g, subjects.API_AGENTS), ListAgents(include_gone=all_), AgentList
        )

    result: AgentList = _client_run(url, data_dir, group, fn)
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        console.print(agents_table(result.agents))


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


@app.command()
def tasks(
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    state: Annotated[list[TaskState] | None, typer.Option("--state", help="Filter.")] = None,
    limit: Annotated[int, typer.Option(help="Most tasks shown.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List the tasks of a running hub, with attempts and reasons."""

    async def fn(nc: Any, g: str) -> TaskList:
        return await call(
            nc,
            subjects.api(g, subjects.API_TASKS),
            ListTasks(states=state or [], limit=limit),
            TaskList,
        )

    result: TaskList = _client_run(url, data_dir, group, fn)
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        console.print(tasks_table(result.tasks))


def _parse_skills(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, _, level = item.partition("=")
        try:
            out[name.strip()] = float(level) if level else 0.0
        except ValueError:
            raise _fail(f"bad --skill {item!r}: use name=level, e.g. python=0.5", 2) from None
    return out


@app.command()
def submit(
    title: Annotated[str | None, typer.Argument(help="Task title.")] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option("--skill", "-s", help="Required skill as name=min_level (repeatable)."),
    ] = None,
    input_: Annotated[str | None, typer.Option("--input", help="Input as JSON.")] = None,
    instructions: Annotated[str, typer.Option(help="What to do.")] = "",
    depends_on: Annotated[
        list[str] | None,
        typer.Option("--depends-on", help="Task id this one waits for (repeatable)."),
    ] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int, typer.Option(help="Failed attempts before giving up.")] = 3,
    task_id: Annotated[str | None, typer.Option("--id", help="Choose the task id.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="JSON file with a list of task specs (a task graph)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the tasks finish.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 300.0,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Submit a task (or a graph from --file) to a running hub."""
    try:
        if file is not None:
            raw = json.loads(file.read_text())
            specs = [TaskSpec.model_validate(s) for s in (raw if isinstance(raw, list) else [raw])]
        elif title:
            specs = [
                TaskSpec(
                    id=task_id,
                    title=title,
                    instructions=instructions,
                    input=json.loads(input_) if input_ else None,
                    skills=_parse_skills(skill or []),
                    depends_on=depends_on or [],
                    priority=priority,
                    max_attempts=max_attempts,
                )
            ]
        else:
            raise _fail("give a TITLE or --file", 2)
    except (ValueError, ValidationError, OSError) as exc:
        raise _fail(f"bad task: {exc}", 2) from None

    async def fn(nc: Any, g: str) -> list[TaskStatus]:
        done = await call(
            nc, subjects.api(g, subjects.API_SUBMIT), SubmitTasks(tasks=specs), Submitted
        )
        for i in done.ids:
            console.print(f"submitted {i}")
        if not wait:
            return []
        return await _wait_for(nc, g, done.ids, timeout)

    finished: list[TaskStatus] = _client_run(url, data_dir, group, fn)
    if wait:
        console.print(tasks_table(finished, "Finished"))
        if any(t.state is not TaskState.DONE for t in finished):
            raise typer.Exit(1)


async def _wait_for(nc: Any, group: str, ids: list[str], timeout: float) -> list[TaskStatus]:
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


@app.command()
def cancel(
    task_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Cancel a task that has not finished."""

    async def fn(nc: Any, g: str) -> TaskStatus:
        return await call(
            nc,
            subjects.api(g, subjects.API_CANCEL),
            CancelTask(task_id=task_id, reason=reason),
            TaskStatus,
        )

    status: TaskStatus = _client_run(url, data_dir, group, fn)
    console.print(f"{status.id} {status.state.value}")


def event_line(ev: Event) -> str:
    """One event as a log line."""
    when = time.strftime("%H:%M:%S", time.localtime(ev.ts))
    attempt = f"#{ev.attempt}" if ev.attempt else ""
    who = " ".join(x for x in (ev.task_id and ev.task_id + attempt, ev.agent_id) if x)
    return f"{ev.seq or '-':>6} {when} {ev.kind:<16} {who:<28} {ev.message}".rstrip()


@app.command()
def events(
    task: Annotated[str | None, typer.Option("--task", help="Only this task's events.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only kinds starting with this (task.revoked).")
    ] = None,
    after: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="Most events shown.")] = 1000,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then stream new ones.")] = False,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The event log: every assignment, detection (lost, stalled) and retry, with its reason."""

    async def fn(nc: Any, g: str) -> None:
        query = ListEvents(task_id=task, kind=kind, after=after, limit=limit)
        stored = await call(nc, subjects.api(g, subjects.API_EVENTS), query, EventList)
        for ev in stored.events:
            typer.echo(ev.model_dump_json() if as_json else event_line(ev))
        if not follow:
            return
        seen = stored.events[-1].seq if stored.events else after
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def on_event(msg: Any) -> None:
            with contextlib.suppress(ProtocolError):
                queue.put_nowait(decode(msg.data, Event))

        await nc.subscribe(subjects.all_events(g), cb=on_event)
        while True:
            ev = await queue.get()
            if (ev.seq and ev.seq <= seen) or (task and ev.task_id != task):
                continue
            if kind and not ev.kind.startswith(kind):
                continue
            typer.echo(ev.model_dump_json() if as_json else event_line(ev))

    with contextlib.suppress(KeyboardInterrupt):
        _client_run(url, data_dir, group, fn)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Folder to write the JSON Schemas to.")] = Path(
        "protocols/schema"
    ),
    check: Annotated[bool, typer.Option(help="Only check the folder is up to date.")] = False,
) -> None:
    """Export the JSON Schema of every wire message (for agents in any language)."""
    schemas = message_schemas()
    stale = []
    for name, body in schemas.items():
        path = out / name
        text = render(body)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check:
        extra = sorted(p.name for p in out.glob("*.json") if p.name not in schemas)
        if stale or extra:
            raise _fail(f"schemas out of date: {', '.join(stale + extra)}; run `clawhub schema`")
        console.print(f"{len(schemas)} schemas up to date in {out}")
    else:
        console.print(f"wrote {len(schemas)} schemas to {out}")


@app.command()
def tui(
    name: Annotated[
        str | None, typer.Option("--name", help="Your display name (default: $USER).")
    ] = None,
    skills: Annotated[
        str, typer.Option("--skills", help="What you can do, with levels: review=0.9,writing=0.6")
    ] = "",
    capacity: Annotated[int, typer.Option(help="Tasks you hold at once.")] = 3,
    id: Annotated[
        str | None, typer.Option("--id", help="Your participant id (default: from the name).")
    ] = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Join the group as a human participant in the terminal UI (runs `python -m tui`)."""
    settings = _settings(data_dir=data_dir, group=group)
    try:
        target = resolve_url(settings, url)
    except HubError as exc:
        raise _fail(str(exc)) from None
    # The hub package never imports the TUI: it runs as its own program.
    argv = [sys.executable, "-m", "tui", "--url", target, "--group", settings.group]
    argv += ["--capacity", str(capacity), "--skills", skills]
    if name:
        argv += ["--name", name]
    if id:
        argv += ["--id", id]
    try:
        code = subprocess.call(argv)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
    keep: Annotated[bool, typer.Option(help="Keep the demo's data folder.")] = False,
) -> None:
    """Start a hub and a fleet of example agents, run a task graph, print who did what."""
    from .demo import run_demo  # noqa: PLC0415 - loads the server half

    code = asyncio.run(run_demo(console, timeout=timeout, keep=keep))
    raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``clawhub`` script."""
    with contextlib.suppress(KeyboardInterrupt):
        app()


if __name__ == "__main__":  # pragma: no cover
    main()
