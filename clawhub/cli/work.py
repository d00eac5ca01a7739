"""``clawhub`` commands for people at work in the group: decide on results, reassign, pause
agents, chat, look at one task, and run goals (free text or a plan file)."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich.table import Table

from protocols import (
    AgentInfo,
    AgentMode,
    CancelGoal,
    DecidePlan,
    DecideTask,
    GetGoal,
    GetGroup,
    GetTask,
    GoalList,
    GoalSpec,
    GoalStatus,
    GroupInfo,
    ListGoals,
    Ok,
    Plan,
    PostChat,
    ReassignTask,
    SetAgentMode,
    SubmitGoal,
    TaskStatus,
    ValidationStep,
    subjects,
)

from ..errors import HubError
from .client import call
from .options import (
    DataDirOpt,
    GroupOpt,
    JsonOpt,
    UrlOpt,
    attempts_text,
    client_run,
    console,
    fail,
)

AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who you are, for the record (default: CLAWHUB_USER or $USER)."),
]


def whoami(name: str | None) -> str:
    """The participant id a person acts as: ``--as``, else the login name made id-safe."""
    raw = name or os.environ.get("CLAWHUB_USER") or getpass.getuser() or "human"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw).strip("-_")[:64] or "human"


def _request(
    url: str | None,
    data_dir: Path | None,
    group: str | None,
    verb: str,
    message: BaseModel,
    reply: type[Any],
) -> Any:
    async def fn(nc: Any, g: str) -> Any:
        return await call(nc, subjects.api(g, verb), message, reply)

    return client_run(url, data_dir, group, fn)


# -------------------------------------------------------------------- tasks and people


def approve(
    task_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the verdict).")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Approve a result waiting for a human (state needs_human)."""
    msg = DecideTask(task_id=task_id, accept=True, reason=reason, by=whoami(as_))
    status: TaskStatus = _request(url, data_dir, group, subjects.API_DECIDE, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}")


def reject(
    task_id: str,
    reason: Annotated[str, typer.Option(help="What is wrong (sent to the reworker).")],
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Reject a result waiting for a human: the task is reworked with your reason."""
    msg = DecideTask(task_id=task_id, accept=False, reason=reason, by=whoami(as_))
    status: TaskStatus = _request(url, data_dir, group, subjects.API_DECIDE, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}")


def reassign(
    task_id: str,
    to: Annotated[str | None, typer.Option("--to", help="Participant to give it to.")] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Take a task from its holder and offer it again (to --to, else the matcher's pick)."""
    msg = ReassignTask(task_id=task_id, to=to, reason=reason, by=whoami(as_))
    status: TaskStatus = _request(url, data_dir, group, subjects.API_REASSIGN, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}" + (f" → {to}" if to else ""))


def _mode(
    agent_id: str, mode: AgentMode, reason: str, as_: str | None, url: Any, dd: Any, g: Any
) -> None:
    msg = SetAgentMode(agent_id=agent_id, mode=mode, reason=reason, by=whoami(as_))
    info: AgentInfo = _request(url, dd, g, subjects.API_AGENT_MODE, msg, AgentInfo)
    console.print(f"{info.profile.id} {info.mode} (holds {info.load})")


def pause(
    agent_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Give a participant no new work (what it holds runs on)."""
    _mode(agent_id, "paused", reason, as_, url, data_dir, group)


def resume(
    agent_id: str,
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Let a paused or draining participant take work again."""
    _mode(agent_id, "active", "", as_, url, data_dir, group)


def drain(
    agent_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """No new work; the hub announces `agent.drained` once it holds nothing."""
    _mode(agent_id, "draining", reason, as_, url, data_dir, group)


def chat(
    text: str,
    task: Annotated[str | None, typer.Option("--task", help="The task it is about.")] = None,
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Post a line in the group's shared channel (read it with `clawhub events --kind chat`)."""
    msg = PostChat(sender=whoami(as_), text=text, task_id=task)
    _request(url, data_dir, group, subjects.API_CHAT, msg, Ok)


def show(
    task_id: str,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One task in full: spec, attempts and why each agent was chosen, verdicts, output."""
    msg = GetTask(task_id=task_id)
    t: TaskStatus = _request(url, data_dir, group, subjects.API_TASK, msg, TaskStatus)
    if as_json:
        console.print_json(t.model_dump_json())
        return
    console.print(f"[bold]{t.id}[/] {t.spec.title}  [cyan]{t.state.value}[/]")
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


def group_info(
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The group at a glance: tasks and goals by state, agents, spend, coordinator model."""
    info: GroupInfo = _request(url, data_dir, group, subjects.API_GROUP, GetGroup(), GroupInfo)
    if as_json:
        console.print_json(info.model_dump_json())
        return
    console.print(f"[bold]group {info.group}[/] on {info.hub_id}")
    console.print(f"  agents: {info.agents_online} online of {info.agents_total}")
    console.print(
        f"  tasks:  {', '.join(f'{k} {v}' for k, v in sorted(info.tasks.items())) or '-'}"
    )
    console.print(
        f"  goals:  {', '.join(f'{k} {v}' for k, v in sorted(info.goals.items())) or '-'}"
    )
    console.print(f"  spend:  ${info.usage.cost:.4f}, {info.usage.total_tokens} tokens")
    state = "ready" if info.coordinator_ready else f"[yellow]off[/]: {info.coordinator_note}"
    console.print(f"  coordinator: {info.coordinator_model} ({state})")


# -------------------------------------------------------------------- goals


def load_plan(path: Path) -> Plan:
    """A plan from a YAML or JSON file: ``{tasks: [...], deliverable: id}`` or a task list."""
    raw = yaml.safe_load(path.read_text())
    if isinstance(raw, list):
        raw = {"tasks": raw}
    return Plan.model_validate(raw)


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


def _print_goal(g: GoalStatus) -> None:
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


def goal(
    text: Annotated[str, typer.Argument(help="The goal, in words.")],
    plan: Annotated[
        Path | None, typer.Option("--plan", help="YAML/JSON plan to run (no model needed).")
    ] = None,
    budget: Annotated[float | None, typer.Option(help="Most USD to spend on models.")] = None,
    deadline: Annotated[
        float | None, typer.Option(help="Seconds from now by which every task must be done.")
    ] = None,
    approve_plan: Annotated[
        bool, typer.Option("--approve-plan", help="A human approves the plan before it runs.")
    ] = False,
    validate: Annotated[
        list[str] | None,
        typer.Option("--validate", help="Validation every task needs: judge, human (repeat)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Coordinator model for this goal.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the goal ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600.0,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Submit a goal: the coordinator model plans it into tasks (or --plan gives the plan)."""
    try:
        given = load_plan(plan) if plan is not None else None
        spec = GoalSpec(
            text=text,
            budget=budget,
            deadline=time.time() + deadline if deadline else None,
            approve_plan=approve_plan,
            validation=[ValidationStep.model_validate({"kind": k}) for k in validate or []],
            model=model,
        )
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise fail(f"bad goal: {exc}", 2) from None

    async def fn(nc: Any, g: str) -> GoalStatus:
        status = await call(
            nc,
            subjects.api(g, subjects.API_GOAL_SUBMIT),
            SubmitGoal(goal=spec, plan=given),
            GoalStatus,
        )
        console.print(f"goal {status.id} {status.state}")
        deadline_at = time.monotonic() + timeout
        while wait and status.state not in ("done", "failed", "cancelled"):
            if time.monotonic() > deadline_at:
                raise HubError(f"goal {status.id} not finished after {timeout:g}s")
            await asyncio.sleep(0.3)
            status = await call(
                nc, subjects.api(g, subjects.API_GOAL), GetGoal(goal_id=status.id), GoalStatus
            )
        return status

    status: GoalStatus = client_run(url, data_dir, group, fn)
    _print_goal(status)
    if wait and status.state != "done":
        raise typer.Exit(1)


def goals(
    goal_id: Annotated[str | None, typer.Argument(help="Show this goal in full.")] = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List goals with progress and spend, or show one with its plan and deliverable."""
    if goal_id:
        msg = GetGoal(goal_id=goal_id)
        status: GoalStatus = _request(url, data_dir, group, subjects.API_GOAL, msg, GoalStatus)
        if as_json:
            console.print_json(status.model_dump_json())
        else:
            _print_goal(status)
        return
    listed: GoalList = _request(url, data_dir, group, subjects.API_GOALS, ListGoals(), GoalList)
    if as_json:
        console.print_json(listed.model_dump_json())
    else:
        console.print(goal_table(listed.goals))


def approve_plan(
    goal_id: str,
    plan: Annotated[Path | None, typer.Option("--plan", help="An edited plan to run.")] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Approve the plan of a goal awaiting approval (optionally an edited one)."""
    try:
        edited = load_plan(plan) if plan is not None else None
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise fail(f"bad plan: {exc}", 2) from None
    msg = DecidePlan(goal_id=goal_id, approve=True, plan=edited, reason=reason, by=whoami(as_))
    status: GoalStatus = _request(url, data_dir, group, subjects.API_GOAL_DECIDE, msg, GoalStatus)
    console.print(f"goal {status.id} {status.state}")


def reject_plan(
    goal_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Reject the plan of a goal awaiting approval (the goal fails)."""
    msg = DecidePlan(goal_id=goal_id, approve=False, reason=reason, by=whoami(as_))
    status: GoalStatus = _request(url, data_dir, group, subjects.API_GOAL_DECIDE, msg, GoalStatus)
    console.print(f"goal {status.id} {status.state}: {status.error}")


def cancel_goal(
    goal_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_: AsOpt = None,
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    group: GroupOpt = None,
) -> None:
    """Stop a goal and its open tasks."""
    msg = CancelGoal(goal_id=goal_id, reason=reason, by=whoami(as_))
    status: GoalStatus = _request(url, data_dir, group, subjects.API_GOAL_CANCEL, msg, GoalStatus)
    console.print(f"goal {status.id} {status.state}")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``clawhub`` app."""
    commands: list[Callable[..., None]] = [
        approve,
        reject,
        reassign,
        pause,
        resume,
        drain,
        chat,
        show,
        goal,
        goals,
    ]
    for command in commands:
        app.command()(command)
    app.command("group")(group_info)
    app.command("approve-plan")(approve_plan)
    app.command("reject-plan")(reject_plan)
    app.command("cancel-goal")(cancel_goal)
