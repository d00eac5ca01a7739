"""The ``clawhub`` command: run a hub, talk to a running one, run the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from protocols import (
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
    asyncapi,
    decode,
    message_schemas,
    render,
    subjects,
)

from ..errors import HubError
from . import agent, bridge, bridge_nats, db, mcp, nats_config, tokens, work
from .client import api_subject, call, resolve_token
from .options import (
    TALKS_TO_HUB,
    VALIDATE_HELP,
    ReasonOpt,
    SharedOptions,
    fail,
    parse_skills,
    parse_validation,
    run_loop,
    shared_options,
)
from .up import up
from .views import agents_table, console, err, event_line, tasks_table

app = typer.Typer(
    name="clawhub",
    help="Claw Hub: the open coordination hub for groups of AI agents and humans.",
    no_args_is_help=True,
    add_completion=False,
)


app.command(name="up")(up)


@app.command()
@shared_options(*TALKS_TO_HUB, "as_json")
def agents(
    all_: Annotated[bool, typer.Option("--all", help="Include lost and departed.")] = False,
    *,
    shared: SharedOptions,
) -> None:
    """List the participants of a running hub."""
    result = shared.request(subjects.API_AGENTS, ListAgents(include_gone=all_), AgentList)
    shared.show(result, lambda: console.print(agents_table(result.agents)))


@app.command()
@shared_options(*TALKS_TO_HUB, "as_json")
def tasks(
    state: Annotated[list[TaskState] | None, typer.Option("--state", help="Filter.")] = None,
    limit: Annotated[int, typer.Option(help="Most tasks shown.")] = 200,
    *,
    shared: SharedOptions,
) -> None:
    """List the tasks of a running hub, with attempts and reasons."""
    query = ListTasks(states=state or [], limit=limit)
    result = shared.request(subjects.API_TASKS, query, TaskList)
    shared.show(result, lambda: console.print(tasks_table(result.tasks)))


#: ``clawhub submit --wait`` ran out of time while a task waits for a human decision.
EXIT_NEEDS_HUMAN = 3


def _human_hint(task_id: str) -> str:
    return (
        f"task {task_id} waits for a human decision: "
        f"`clawhub approve {task_id}` or `clawhub reject {task_id} --reason ...`"
    )


async def _wait_for_tasks(nc: NATS, group: str, ids: list[str], timeout: float) -> list[TaskStatus]:
    """Poll until every task is terminal (the event stream is for the SDK's ``wait``). A
    task that waits for a human is said at once; if the time runs out while one still
    does, that is the error (exit ``EXIT_NEEDS_HUMAN``), not a bare timeout."""
    deadline = time.monotonic() + timeout
    told: set[str] = set()
    while True:
        out = [
            await call(
                nc, api_subject(nc, group, subjects.API_TASK), GetTask(task_id=i), TaskStatus
            )
            for i in ids
        ]
        if all(t.state.terminal for t in out):
            return out
        waiting = [t.id for t in out if t.state is TaskState.NEEDS_HUMAN]
        for task_id in waiting:
            if task_id not in told:
                told.add(task_id)
                err.print(f"[yellow]note:[/] {_human_hint(task_id)}")
        if time.monotonic() > deadline:
            if waiting:
                hints = "; ".join(_human_hint(t) for t in waiting)
                raise fail(f"not finished after {timeout:g}s: {hints}", EXIT_NEEDS_HUMAN)
            raise HubError(f"tasks not finished after {timeout:g}s")
        await asyncio.sleep(0.2)


@app.command()
@shared_options(*TALKS_TO_HUB)
def submit(
    title: Annotated[str | None, typer.Argument(help="Task title.")] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option("--skill", "-s", help="Required skill as name=min_level (repeatable)."),
    ] = None,
    validate: Annotated[list[str] | None, typer.Option("--validate", help=VALIDATE_HELP)] = None,
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
    *,
    shared: SharedOptions,
) -> None:
    """Submit a task (or a graph from --file) to a running hub. With --wait: exit 0 when
    every task is done, 1 when one failed or the time ran out, 3 when the time ran out
    while a task waits for a human decision (`clawhub approve`)."""
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
                    skills=parse_skills(skill or []),
                    depends_on=depends_on or [],
                    priority=priority,
                    max_attempts=max_attempts,
                    validation=parse_validation(validate or []),
                )
            ]
        else:
            raise fail("give a TITLE or --file", 2)
    except (ValueError, ValidationError, OSError) as exc:
        raise fail(f"bad task: {exc}", 2) from None

    async def submit_and_wait(nc: NATS, group: str) -> list[TaskStatus]:
        done = await call(
            nc, api_subject(nc, group, subjects.API_SUBMIT), SubmitTasks(tasks=specs), Submitted
        )
        for i in done.ids:
            console.print(f"submitted {i}")
        if not wait:
            return []
        return await _wait_for_tasks(nc, group, done.ids, timeout)

    finished = shared.run(submit_and_wait)
    if wait:
        console.print(tasks_table(finished, "Finished"))
        if any(t.state is not TaskState.DONE for t in finished):
            raise typer.Exit(1)


@app.command()
@shared_options(*TALKS_TO_HUB, "as_")
def cancel(task_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
    """Cancel a task that has not finished."""
    msg = CancelTask(task_id=task_id, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_CANCEL, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}")


@app.command()
@shared_options(*TALKS_TO_HUB, "as_json")
def events(
    task: Annotated[str | None, typer.Option("--task", help="Only this task's events.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only kinds starting with this (task.revoked).")
    ] = None,
    after: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="Most events shown.")] = 1000,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then stream new ones.")] = False,
    *,
    shared: SharedOptions,
) -> None:
    """The event log: every assignment, detection (lost, stalled) and retry, with its reason."""

    def echo(ev: Event) -> None:
        typer.echo(ev.model_dump_json() if shared.as_json else event_line(ev))

    async def read_and_follow(nc: NATS, group: str) -> None:
        query = ListEvents(task_id=task, kind=kind, after=after, limit=limit)
        stored = await call(nc, api_subject(nc, group, subjects.API_EVENTS), query, EventList)
        for ev in stored.events:
            echo(ev)
        if not follow:
            return
        seen = stored.events[-1].seq if stored.events else after
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def on_event(msg: Msg) -> None:
            with contextlib.suppress(ProtocolError):
                queue.put_nowait(decode(msg.data, Event))

        await nc.subscribe(subjects.all_events(group), cb=on_event)
        while True:
            ev = await queue.get()
            if (ev.seq and ev.seq <= seen) or (task and ev.task_id != task):
                continue
            if kind and not ev.kind.startswith(kind):
                continue
            echo(ev)

    with contextlib.suppress(KeyboardInterrupt):
        shared.run(read_and_follow)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Folder to write the JSON Schemas to.")] = Path(
        "protocols/schema"
    ),
    asyncapi_path: Annotated[
        Path, typer.Option("--asyncapi", help="Where the AsyncAPI 3 document of NATS goes.")
    ] = Path("protocols/asyncapi.json"),
    openapi_path: Annotated[
        Path, typer.Option("--openapi", help="Where the gateway's OpenAPI document goes.")
    ] = Path("clawhub/openapi.json"),
    check: Annotated[bool, typer.Option(help="Only check the files are up to date.")] = False,
) -> None:
    """Export (or check) the JSON Schema of every wire message, the AsyncAPI document of the
    NATS subjects and the OpenAPI document of the gateway."""
    from ..gateway.app import openapi_document  # noqa: PLC0415 - builds the app offline

    schemas = message_schemas()
    files = {out / name: render(body) for name, body in schemas.items()}
    files[asyncapi_path] = render(asyncapi())
    files[openapi_path] = openapi_document()
    stale = []
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check:
        extra = sorted(str(p) for p in out.glob("*.json") if p.name not in schemas)
        if stale or extra:
            raise fail(f"schemas out of date: {', '.join(stale + extra)}; run `clawhub schema`")
        console.print(f"{len(schemas)} schemas up to date in {out}, and the API documents")
    else:
        console.print(f"wrote {len(schemas)} schemas to {out}, {asyncapi_path} and {openapi_path}")


@app.command()
@shared_options(*TALKS_TO_HUB)
def tui(
    name: Annotated[
        str | None,
        typer.Option("--name", help="Your display name (default: CLAWHUB_USER or $USER)."),
    ] = None,
    skills: Annotated[
        str, typer.Option("--skills", help="What you can do, with levels: review=0.9,writing=0.6")
    ] = "",
    capacity: Annotated[int, typer.Option(help="Tasks you hold at once.")] = 3,
    id: Annotated[
        str | None, typer.Option("--id", help="Your participant id (default: from the name).")
    ] = None,
    log: Annotated[Path | None, typer.Option("--log", help="Write the TUI's log here.")] = None,
    *,
    shared: SharedOptions,
) -> None:
    """Join the group as a human participant in the terminal UI (runs `python -m tui`)."""
    settings, target = shared.hub()
    # The hub package never imports the TUI: it runs as its own program. The token goes in
    # the environment (CLAWHUB_TOKEN, read by the SDK), never on a command line.
    token = resolve_token(settings)
    env = {**os.environ, "CLAWHUB_TOKEN": token} if token else None
    argv = [sys.executable, "-m", "tui", "--url", target, "--group", settings.group]
    argv += ["--capacity", str(capacity), "--skills", skills]
    if name:
        argv += ["--name", name]
    if id:
        argv += ["--id", id]
    if log:
        argv += ["--log", str(log)]
    raise typer.Exit(_run_forwarding_signals(argv, env))


def _run_forwarding_signals(argv: list[str], env: dict[str, str] | None) -> int:
    """Run the TUI as a child and return its exit code. A closed terminal (SIGHUP) or a
    SIGTERM is passed on to it, so the human leaves the group properly instead of this
    wrapper dying first."""
    proc = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGHUP, signal.SIGTERM)}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue  # the child has the terminal and leaves on its own
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
    keep: Annotated[bool, typer.Option(help="Keep the demo's data folder.")] = False,
    bridges: Annotated[
        bool, typer.Option(help="An A2A, a NATS-protocol and an MCP agent; one killed mid-task.")
    ] = False,
) -> None:
    """Start a hub and a fleet of example agents, run a task graph, print who did what."""
    if bridges:
        from .demo_bridges import run_bridges_demo as main  # noqa: PLC0415 - the server half
    else:
        from .demo import run_demo as main  # noqa: PLC0415 - loads the server half
    raise typer.Exit(run_loop(main(console, timeout=timeout, keep=keep)))


work.register(app)
tokens.register(app)
agent.register(app)
bridge_nats.register(bridge.bridge_app)
bridge.register(app)
db.register(app)
mcp.register(app)
nats_config.register(app)


def main() -> None:
    """Entry point of the ``clawhub`` script."""
    with contextlib.suppress(KeyboardInterrupt):
        app()


if __name__ == "__main__":  # pragma: no cover
    main()
