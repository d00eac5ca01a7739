"""``clawhub demo``: a hub on the embedded default, a fleet of agents in their own
processes, a task graph run live, and a summary of who did what.

The graph is a goal with a given plan (no model or API key needed). The agents come from
``agents_sdk.demo`` and run as separate processes (the hub never imports the SDK): one of
them hangs on its first task and one dies in the middle of its first task, so the demo
shows stalled and lost work being revoked and reassigned; the API code goes through a
reviewer agent, who rejects the first version, so the demo shows rework with reasons too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
from rich.console import Console
from rich.live import Live
from rich.table import Table

from protocols import (
    Constraints,
    Event,
    GoalSpec,
    Plan,
    SubmitGoal,
    TaskSpec,
    TaskState,
    Timeouts,
    ValidationStep,
    decode,
    subjects,
)

from ..board.records import TaskRecord
from ..runtime.hub import Hub
from ..settings import HubSettings
from .views import feed_line, verdict_text

#: The demo fleet (roles of ``agents_sdk.demo``), one process each.
ROLES = ("researcher", "hung-model", "coder", "flaky-laptop", "writer", "reviewer", "phone")

#: Events worth a line in the demo's feed.
FEED = {
    "agent.registered",
    "agent.lost",
    "task.assigned",
    "task.revoked",
    "task.retry",
    "task.done",
    "task.failed",
    "task.rejected",
    "task.reviewing",
    "task.verdict",
    "goal.running",
    "goal.done",
    "goal.failed",
}


def demo_graph() -> list[TaskSpec]:
    """A small feature launch: research, spec, code, review, tests, docs, release notes."""
    quick = Timeouts(stall=3.0)

    def t(
        tid: str,
        title: str,
        skills: dict[str, float],
        deps: list[str] | None = None,
        **extra: object,
    ) -> TaskSpec:
        return TaskSpec(
            id=tid,
            title=title,
            skills=skills,
            depends_on=deps or [],
            timeouts=quick,
            input={"project": "claw-hub"},
            **extra,
        )

    return [
        t("survey", "Survey prior art", {"research": 0.8}),
        t("feedback", "Collect user feedback", {"research": 0.6}),
        t(
            "pii-scan",
            "Scan support tickets for PII",
            {"review": 0.5},
            constraints=Constraints(data="private", local_only=True),
        ),
        t("spec", "Write the spec", {"writing": 0.7}, ["survey", "feedback"]),
        t(
            "api",
            "Implement the API",
            {"python": 0.8},
            ["spec"],
            priority=5,
            acceptance=["every endpoint handles errors"],
            validation=[ValidationStep(kind="reviewer", skill="review", level=0.8)],
        ),
        t("cli", "Implement the CLI", {"python": 0.7}, ["spec"]),
        t("storage", "Implement storage", {"python": 0.8}, ["spec"]),
        t("tests", "Write the tests", {"python": 0.6, "testing": 0.5}, ["spec"]),
        t(
            "review",
            "Review the code",
            {"review": 0.8},
            ["api", "cli", "storage"],
            output_schema={
                "type": "object",
                "required": ["approved"],
                "properties": {"approved": {"const": True}},
            },
        ),
        t("docs", "Write the docs", {"writing": 0.8}, ["spec"]),
        t(
            "notes",
            "Draft release notes",
            {"summarize": 0.7},
            ["review", "tests", "docs", "pii-scan"],
        ),
        t("translate", "Translate release notes", {"translate": 0.6}, ["notes"]),
    ]


def demo_goal() -> SubmitGoal:
    """The demo as a goal with a given plan: the graph above, ending in the translation."""
    return SubmitGoal(
        goal=GoalSpec(text="Launch the claw-hub feature", metadata={"demo": "true"}),
        plan=Plan(tasks=demo_graph(), deliverable="translate", rationale="the demo's plan"),
    )


def _live_table(recs: list[TaskRecord]) -> Table:
    table = Table(title="Claw Hub demo: live", expand=False)
    for col in ("task", "state", "agent", "attempt", "progress"):
        table.add_column(col)
    colours = {"done": "green", "failed": "red", "running": "cyan", "assigned": "yellow"}
    for r in recs:
        colour = colours.get(r.state.value, "white")
        bar = ""
        if r.progress is not None:
            filled = int(r.progress * 10)
            bar = "#" * filled + "." * (10 - filled)
        table.add_row(
            r.spec.title,
            f"[{colour}]{r.state.value}[/]",
            r.assigned_to or "",
            str(r.attempt or ""),
            bar,
        )
    return table


def summary_tables(hub: Hub, ids: list[str]) -> tuple[Table, Table]:
    """Who did what (tasks) and how each agent fared."""
    tasks = Table(title="Summary: who did what")
    for col in ("task", "state", "done by", "attempts", "seconds"):
        tasks.add_column(col)
    for tid in ids:
        r = hub.board.tasks[tid]
        done_by = next((h.agent_id for h in r.history if h.outcome == "done"), "-")
        attempts = ", ".join(
            f"{h.agent_id}:{h.outcome}" for h in r.history if h.outcome not in ("declined",)
        )
        start = r.history[0].offered_at if r.history else r.created_at
        end = r.history[-1].ended_at if r.history and r.history[-1].ended_at else r.updated_at
        tasks.add_row(r.spec.title, r.state.value, done_by, attempts, f"{end - start:.1f}")
    agents = Table(title="Agents")
    for col in ("agent", "model", "device", "state", "done", "failed", "reliability"):
        agents.add_column(col)
    for a in sorted(hub.board.agents.values(), key=lambda a: a.id):
        agents.add_row(
            a.id,
            a.profile.model or "plain code",
            a.profile.device,
            a.state,
            str(a.completed),
            str(a.failed),
            f"{a.reliability:.2f}",
        )
    return tasks, agents


def _spawn(role: str, url: str, log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{role}.log").open("wb")
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, "-m", "agents_sdk.demo", "--url", url, "--role", role],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )


async def run_demo(console: Console, *, timeout: float = 120.0, keep: bool = False) -> int:
    """Run the whole demo; 0 when every task is done."""
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="clawhub-demo-"))
    settings = HubSettings(
        data_dir=data_dir,
        nats_url=None,
        store_url=None,
        heartbeat_interval=0.5,
        missed_beats=3,
        accept_timeout=2.0,
        decline_backoff=0.2,
    )
    hub = Hub(settings)
    await hub.start()
    console.print(
        f"[bold]Claw Hub demo[/]: hub {hub.hub_id} on {hub.url} (embedded nats-server)"
        f", store {hub.store.display_url}"
    )
    procs = {role: _spawn(role, hub.url, data_dir) for role in ROLES}
    nc = await nats.connect(hub.url, name="clawhub-demo-feed")
    feed: list[Event] = []

    async def on_event(msg: object) -> None:
        with contextlib.suppress(Exception):
            ev = decode(msg.data, Event)  # type: ignore[attr-defined]
            if ev.kind in FEED:
                feed.append(ev)

    await nc.subscribe(subjects.all_events(hub.group), cb=on_event)
    code = 1
    try:
        deadline = time.monotonic() + 30
        while sum(1 for a in hub.board.agents.values() if a.state == "online") < len(ROLES):
            if time.monotonic() > deadline:
                console.print("[red]the demo agents did not all join within 30s[/]")
                return 1
            await asyncio.sleep(0.05)
        console.print(
            f"{len(ROLES)} agents joined in {time.monotonic() - started:.1f}s; "
            "submitting the goal and its plan"
        )
        goal = hub.board.submit_goal(demo_goal())
        ids = list(goal.task_ids)
        run_start = time.monotonic()
        with Live(
            _live_table([hub.board.tasks[i] for i in ids]), console=console, refresh_per_second=8
        ) as live:
            while time.monotonic() - run_start < timeout:
                while feed:
                    ev = feed.pop(0)
                    live.console.print("  " + feed_line(ev), markup=False, highlight=False)
                recs = [hub.board.tasks[i] for i in ids]
                live.update(_live_table(recs))
                if all(r.state.terminal for r in recs):
                    break
                await asyncio.sleep(0.1)
        recs = [hub.board.tasks[i] for i in ids]
        task_table, agent_table = summary_tables(hub, ids)
        console.print(task_table)
        console.print(agent_table)
        done = sum(1 for r in recs if r.state is TaskState.DONE)
        verdicts = [v for r in recs for v in r.verdicts]
        for r in recs:
            for v in r.verdicts:
                verdict = verdict_text(v.step, v.by, v.accepted, v.reasons)
                console.print(f"  verdict on {r.spec.title!r} attempt {v.attempt}: {verdict}")
        console.print(f"goal {goal.id}: {goal.state}" + (f" ({goal.error})" if goal.error else ""))
        reassigned = {
            o: sum(1 for r in recs for h in r.history if h.outcome == o)
            for o in ("stalled", "lost", "rejected", "error")
        }
        extra = ", ".join(f"{n} {o}" for o, n in reassigned.items() if n)
        console.print(
            f"[bold]{done}/{len(recs)} tasks done[/] in "
            f"{time.monotonic() - run_start:.1f}s"
            f" (whole demo {time.monotonic() - started:.1f}s)"
            f"{'; reassigned after ' + extra if extra else ''}"
        )
        (data_dir / "summary.json").write_text(
            json.dumps(
                {
                    "done": done,
                    "total": len(recs),
                    "reassigned": reassigned,
                    "states": {r.id: r.state.value for r in recs},
                    "goal": goal.state,
                    "verdicts": [v.model_dump(mode="json") for v in verdicts],
                },
                indent=2,
            )
        )
        code = 0 if done == len(recs) and goal.state == "done" else 1
    finally:
        await nc.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:  # in a thread: the hub must keep answering their goodbyes meanwhile
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
        await hub.stop()
        if keep:
            console.print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return code
