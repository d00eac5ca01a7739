"""``clawhub`` commands for people at work in the group: decide on results, reassign, pause
agents, chat, look at one task, and run goals (free text or a plan file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import yaml
from nats.aio.client import Client as NATS
from pydantic import ValidationError

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
    subjects,
)

from ..errors import HubError
from .client import api_subject, call
from .options import (
    TALKS_TO_HUB,
    VALIDATE_HELP,
    ReasonOpt,
    SharedOptions,
    fail,
    parse_validation,
    shared_options,
)
from .views import TREE_LIMIT, console, goal_table, print_goal, print_task

# -------------------------------------------------------------------- tasks and people


@shared_options(*TALKS_TO_HUB, "as_")
def approve(
    task_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the verdict).")] = "",
    *,
    shared: SharedOptions,
) -> None:
    """Approve a result waiting for a human (state needs_human)."""
    msg = DecideTask(task_id=task_id, accept=True, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_DECIDE, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}")


@shared_options(*TALKS_TO_HUB, "as_")
def reject(
    task_id: str,
    reason: Annotated[str, typer.Option(help="What is wrong (sent to the reworker).")],
    *,
    shared: SharedOptions,
) -> None:
    """Reject a result waiting for a human: the task is reworked with your reason."""
    msg = DecideTask(task_id=task_id, accept=False, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_DECIDE, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}")


@shared_options(*TALKS_TO_HUB, "as_")
def reassign(
    task_id: str,
    to: Annotated[str | None, typer.Option("--to", help="Participant to give it to.")] = None,
    reason: ReasonOpt = "",
    *,
    shared: SharedOptions,
) -> None:
    """Take a task from its holder and offer it again (to --to, else the matcher's pick)."""
    msg = ReassignTask(task_id=task_id, to=to, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_REASSIGN, msg, TaskStatus)
    console.print(f"{status.id} {status.state.value}" + (f" → {to}" if to else ""))


def _set_mode(shared: SharedOptions, agent_id: str, mode: AgentMode, reason: str) -> None:
    msg = SetAgentMode(agent_id=agent_id, mode=mode, reason=reason, by=shared.actor)
    info = shared.request(subjects.API_AGENT_MODE, msg, AgentInfo)
    console.print(f"{info.profile.id} {info.mode} (holds {info.load})")


@shared_options(*TALKS_TO_HUB, "as_")
def pause(agent_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
    """Give a participant no new work (what it holds runs on)."""
    _set_mode(shared, agent_id, "paused", reason)


@shared_options(*TALKS_TO_HUB, "as_")
def resume(agent_id: str, *, shared: SharedOptions) -> None:
    """Let a paused or draining participant take work again."""
    _set_mode(shared, agent_id, "active", "")


@shared_options(*TALKS_TO_HUB, "as_")
def drain(agent_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
    """No new work; the hub announces `agent.drained` once it holds nothing."""
    _set_mode(shared, agent_id, "draining", reason)


@shared_options(*TALKS_TO_HUB, "as_")
def chat(
    text: str,
    task: Annotated[str | None, typer.Option("--task", help="The task it is about.")] = None,
    *,
    shared: SharedOptions,
) -> None:
    """Post a line in the group's shared channel (read it with `clawhub events --kind chat`)."""
    shared.request(subjects.API_CHAT, PostChat(sender=shared.actor, text=text, task_id=task), Ok)


@shared_options(*TALKS_TO_HUB, "as_json")
def show(task_id: str, *, shared: SharedOptions) -> None:
    """One task in full: spec, attempts and why each agent was chosen, verdicts, output,
    and the tree of the tasks it delegated (parent → children, with their states)."""

    async def session(nc: NATS, group: str) -> tuple[TaskStatus, dict[str, TaskStatus]]:
        async def get(tid: str) -> TaskStatus:
            subject = api_subject(nc, group, subjects.API_TASK)
            return await call(nc, subject, GetTask(task_id=tid), TaskStatus)

        top = await get(task_id)
        tree: dict[str, TaskStatus] = {}
        if top.spec.parent:
            tree[top.spec.parent] = await get(top.spec.parent)
        todo = list(top.children)
        while todo and len(tree) < TREE_LIMIT:
            kid = await get(todo.pop(0))
            tree[kid.id] = kid
            todo += kid.children
        return top, tree

    task, tree = shared.run(session)
    shared.show(task, lambda: print_task(task, tree))


def _print_group(info: GroupInfo) -> None:
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


@shared_options(*TALKS_TO_HUB, "as_json")
def group_info(*, shared: SharedOptions) -> None:
    """The group at a glance: tasks and goals by state, agents, spend, coordinator model."""
    info = shared.request(subjects.API_GROUP, GetGroup(), GroupInfo)
    shared.show(info, lambda: _print_group(info))


# -------------------------------------------------------------------- goals


def load_plan(path: Path) -> Plan:
    """A plan from a YAML or JSON file: ``{tasks: [...], deliverable: id}`` or a task list."""
    raw = yaml.safe_load(path.read_text())
    if isinstance(raw, list):
        raw = {"tasks": raw}
    return Plan.model_validate(raw)


@shared_options(*TALKS_TO_HUB)
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
        typer.Option("--validate", help=VALIDATE_HELP + " Every task of the goal needs them."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Coordinator model for this goal.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the goal ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600.0,
    *,
    shared: SharedOptions,
) -> None:
    """Submit a goal: the coordinator model plans it into tasks (or --plan gives the plan)."""
    try:
        given = load_plan(plan) if plan is not None else None
        spec = GoalSpec(
            text=text,
            budget=budget,
            deadline=time.time() + deadline if deadline else None,
            approve_plan=approve_plan,
            validation=parse_validation(validate or []),
            model=model,
        )
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise fail(f"bad goal: {exc}", 2) from None

    async def submit_and_watch(nc: NATS, group: str) -> GoalStatus:
        status = await call(
            nc,
            api_subject(nc, group, subjects.API_GOAL_SUBMIT),
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
                nc,
                api_subject(nc, group, subjects.API_GOAL),
                GetGoal(goal_id=status.id),
                GoalStatus,
            )
        return status

    status = shared.run(submit_and_watch)
    print_goal(status)
    if wait and status.state != "done":
        raise typer.Exit(1)


@shared_options(*TALKS_TO_HUB, "as_json")
def goals(
    goal_id: Annotated[str | None, typer.Argument(help="Show this goal in full.")] = None,
    *,
    shared: SharedOptions,
) -> None:
    """List goals with progress and spend, or show one with its plan and deliverable."""
    if goal_id:
        status = shared.request(subjects.API_GOAL, GetGoal(goal_id=goal_id), GoalStatus)
        shared.show(status, lambda: print_goal(status))
        return
    listed = shared.request(subjects.API_GOALS, ListGoals(), GoalList)
    shared.show(listed, lambda: console.print(goal_table(listed.goals)))


@shared_options(*TALKS_TO_HUB, "as_")
def approve_plan(
    goal_id: str,
    plan: Annotated[Path | None, typer.Option("--plan", help="An edited plan to run.")] = None,
    reason: ReasonOpt = "",
    *,
    shared: SharedOptions,
) -> None:
    """Approve the plan of a goal awaiting approval (optionally an edited one)."""
    try:
        edited = load_plan(plan) if plan is not None else None
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise fail(f"bad plan: {exc}", 2) from None
    msg = DecidePlan(goal_id=goal_id, approve=True, plan=edited, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_GOAL_DECIDE, msg, GoalStatus)
    console.print(f"goal {status.id} {status.state}")


@shared_options(*TALKS_TO_HUB, "as_")
def reject_plan(goal_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
    """Reject the plan of a goal awaiting approval (the goal fails)."""
    msg = DecidePlan(goal_id=goal_id, approve=False, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_GOAL_DECIDE, msg, GoalStatus)
    console.print(f"goal {status.id} {status.state}: {status.error}")


@shared_options(*TALKS_TO_HUB, "as_")
def cancel_goal(goal_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
    """Stop a goal and its open tasks."""
    msg = CancelGoal(goal_id=goal_id, reason=reason, by=shared.actor)
    status = shared.request(subjects.API_GOAL_CANCEL, msg, GoalStatus)
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
