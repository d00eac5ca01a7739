"""The MCP tools for working *in* the group: an MCP client joins as a participant with a
skill profile and takes the tasks the hub offers it, the way a person in the TUI does.

=====================  =========================================  ==========================
MCP                    hub message                                notes
=====================  =========================================  ==========================
``join_group``         ``register`` (kind from the token's role)  the token's participant id
``take_next_task``     an ``Assignment`` answered ``Accept``      waits ≤ 30 s per call
``take_next_task``     ``api.claim`` first, with ``task_id``      a ready task, by id
``report_progress``    ``progress`` (with the attempt number)     resets the stall timer
``submit_result``      ``result`` (with the attempt number)       ``ResultAck``; fenced
``hand_back_task``     ``api.reassign`` (humans, admins)          not counted as a failure
``hand_back_task``     ``result`` ``ok=false`` (agent tokens)     counted as a failed attempt
``leave_group``        ``deregister``                             what it holds is reassigned
(no call for window)   the link dropped: ``agent.lost``           its task is reassigned
=====================  =========================================  ==========================
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field, JsonValue

from protocols import (
    AgentProfile,
    Assignment,
    ProtocolError,
    ReassignTask,
    ResultAck,
    TaskStatus,
    subjects,
)

from ...runtime.auth import may_call
from .port import HubPort
from .tools import WRITES, HubRefused, Skills, TaskId, Tooling, tool
from .worker import MAX_TAKE_WAIT, Worker


def _refused(exc: ProtocolError) -> HubRefused:
    return HubRefused(f"{exc.code.value}: {exc.message}")


def assignment_view(offer: Assignment) -> dict[str, Any]:
    """What a model needs to do the task."""
    spec = offer.spec
    return {
        "task_id": offer.task_id,
        "attempt": offer.attempt,
        "title": spec.title,
        "instructions": spec.instructions,
        "input": spec.input,
        "skills": spec.skills,
        "acceptance": spec.acceptance,
        "output_schema": spec.output_schema,
        "dependency_outputs": offer.dependency_outputs,
        "feedback": [v.model_dump(mode="json", exclude={"type"}) for v in offer.feedback],
        "stall_timeout": offer.stall_timeout,
        "run_timeout": offer.run_timeout,
        "next": f"work on it; report_progress at least every {offer.stall_timeout:g}s; then "
        "submit_result(task_id, output) or hand_back_task(task_id, reason)",
    }


def add_work_tools(server: MCPServer[Any], t: Tooling) -> None:
    """Add join, take, progress, submit, hand back and leave."""

    def joined(port: HubPort) -> Worker:
        worker = t.worker(port)
        if worker is None:
            raise HubRefused("unknown_agent: call join_group first (with your skills)")
        try:
            worker.check_joined()
        except ProtocolError as exc:
            raise _refused(exc) from None
        return worker

    def with_notes(worker: Worker, reply: dict[str, Any]) -> dict[str, Any]:
        if worker.notes:
            reply["notes"], worker.notes = list(worker.notes), []
        return reply

    @tool(server, WRITES)
    async def join_group(
        skills: Skills,
        ctx: Context[Any, Any],
        name: Annotated[str, Field(description="Your display name.", max_length=200)] = "",
        agent_id: Annotated[
            str | None,
            Field(
                description="Participant id (default: the id your token acts as; only admin "
                "tokens may choose another)."
            ),
        ] = None,
        capacity: Annotated[int, Field(description="Tasks held at once.", ge=1, le=10)] = 1,
        labels: Annotated[
            list[str], Field(description="Labels task constraints can require.")
        ] = [],  # noqa: B006 - the SDK copies defaults into each call's arguments
        model: Annotated[
            str | None, Field(description='The model you run on, e.g. "anthropic/claude-..."')
        ] = None,
    ) -> dict[str, Any]:
        """Join the group as a participant that takes tasks, with your skills (with a human
        token, as that person). Then call take_next_task in a loop. You stay in the group
        while you make tool calls: after `window` seconds without one you are lost (a person:
        away) and your task goes to someone else."""
        port = t.port(ctx)
        who = port.principal
        old = t.worker(port)
        if old is not None and old.state == "joined":
            await old.leave("joined again with a new profile")
        chosen = agent_id or who.agent_id or f"mcp-{secrets.token_hex(3)}"
        profile = t.build(
            port,
            "join_group",
            AgentProfile,
            id=chosen,
            name=name or chosen,
            kind="human" if who.role == "human" else "agent",
            skills=skills,
            capacity=capacity,
            labels=labels,
            model=model,
            device="cloud",
            sdk="clawhub-mcp",
        )
        worker = Worker(port, profile, window=t.window)
        try:
            ack = await worker.join()
        except ProtocolError as exc:
            raise _refused(exc) from None
        t.workers[(who.group, who.token_id)] = worker
        return {
            "agent_id": worker.agent_id,
            "window": t.window,
            "heartbeat_interval": ack.heartbeat_interval,
            "next": f"take_next_task (waits up to {MAX_TAKE_WAIT:g}s); make a tool call at "
            f"least every {t.window:g}s to stay in the group",
        }

    @tool(server, WRITES)
    async def take_next_task(
        ctx: Context[Any, Any],
        wait_seconds: Annotated[
            float,
            Field(description="How long to wait for an offer (at most 30).", ge=0, le=30),
        ] = 25.0,
        task_id: Annotated[
            str | None,
            Field(description="Ask for this ready task by id (default: whatever is offered)."),
        ] = None,
    ) -> dict[str, Any]:
        """Take the next task the hub offers you, waiting up to wait_seconds. Returns the
        task (id, attempt, instructions, input, the outputs of its dependencies, feedback on
        earlier attempts), or task null when none came: then call it again."""
        port = t.port(ctx)
        worker = joined(port)
        try:
            offer = await worker.take(wait_seconds, task_id)
        except ProtocolError as exc:
            raise _refused(exc) from None
        if offer is None:
            reply: dict[str, Any] = {
                "task": None,
                "next": "no task offered yet: call take_next_task again",
            }
        else:
            reply = {"task": assignment_view(offer)}
        return with_notes(worker, reply)

    @tool(server, WRITES)
    async def report_progress(
        task_id: TaskId,
        message: Annotated[str, Field(description="What you are doing now.", max_length=10_000)],
        ctx: Context[Any, Any],
        fraction: Annotated[
            float | None, Field(description="Done so far, 0..1, if you know.", ge=0, le=1)
        ] = None,
    ) -> dict[str, Any]:
        """Tell the hub the task you hold is moving (resets its stall timer: without progress
        for the task's stall_timeout the hub takes the task back)."""
        port = t.port(ctx)
        worker = joined(port)
        try:
            await worker.progress(task_id, message, fraction)
        except ProtocolError as exc:
            raise _refused(exc) from None
        return with_notes(worker, {"ok": True})

    @tool(server, WRITES)
    async def submit_result(
        task_id: TaskId,
        output: Annotated[JsonValue, Field(description="Your result (any JSON: text, object).")],
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        """Submit the result of the task you hold. The hub validates it (schema, reviewer,
        judge or a person, as the task asks): accepted says whether it passed, state where the
        task went."""
        port = t.port(ctx)
        worker = joined(port)
        try:
            ack = await worker.submit(task_id, output)
        except ProtocolError as exc:
            raise _refused(exc) from None
        assert isinstance(ack, ResultAck)
        return with_notes(
            worker,
            {
                "task_id": ack.task_id,
                "attempt": ack.attempt,
                "accepted": ack.accepted,
                "state": ack.state.value,
                "reason": ack.reason,
                "next": "take_next_task for more work",
            },
        )

    @tool(server, WRITES)
    async def hand_back_task(
        task_id: TaskId,
        reason: Annotated[str, Field(description="Why you give it back.", max_length=1000)],
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        """Give back a task you hold, so the hub offers it to someone else. With a human or
        admin token it is not counted as a failure; with an agent token it counts as a failed
        attempt of the task."""
        port = t.port(ctx)
        worker = joined(port)
        try:
            worker.holding(task_id)
            if may_call(port.principal, subjects.API_REASSIGN):
                message = ReassignTask(task_id=task_id, reason=reason or "handed back")
                status = await t.ask(port, subjects.API_REASSIGN, message, TaskStatus)
                worker.release(task_id)
                return with_notes(worker, {"state": status.state.value, "counted": False})
            ack = await worker.submit(
                task_id, None, ok=False, error=f"handed back: {reason or 'no reason given'}"
            )
        except ProtocolError as exc:
            raise _refused(exc) from None
        assert isinstance(ack, ResultAck)
        return with_notes(worker, {"state": ack.state.value, "counted": True})

    @tool(server, WRITES)
    async def leave_group(
        ctx: Context[Any, Any],
        reason: Annotated[str, Field(description="Why (kept in the record).")] = "",
    ) -> dict[str, Any]:
        """Leave the group: what you hold goes back to the hub, which reassigns it."""
        port = t.port(ctx)
        worker = joined(port)
        await worker.leave(reason or "left (MCP)")
        who = port.principal
        t.workers.pop((who.group, who.token_id), None)
        return {"left": True}
