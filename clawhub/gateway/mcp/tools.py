"""The MCP server of a Claw Group: tools for a person's assistant (submit, follow, decide,
chat), tools for working in the group (``work``), and the group's tasks and events as
resources. Written once against a ``HubPort``; the gateway serves it over streamable HTTP at
``/mcp`` (``http``), ``clawhub mcp`` over stdio.

What maps to what (a bridge translates, the board decides):

=====================  ===============================  ====================================
MCP                    hub API / message                notes
=====================  ===============================  ====================================
``submit_task``        ``api.submit`` (one ``TaskSpec``)  the reply's ``task_id``
``submit_goal``        ``api.goal_submit``              needs the coordinator model's key
``task_status``        ``api.task``                     the whole ``TaskStatus``
``list_tasks``         ``api.tasks``                    one line per task
``list_agents``        ``api.agents``                   one line per participant
``group_summary``      ``api.group``                    ``GroupInfo``
``approve_result``     ``api.decide`` (accept)          humans and admins only
``reject_result``      ``api.decide`` (reject)          humans and admins only
``chat``               ``api.chat``                     as the token's participant
resources              ``api.tasks``, ``api.task``,     ``clawhub://tasks``,
                       ``api.events``                   ``clawhub://tasks/{id}``, events
tool error             ``ErrorReply``                   ``code: message``; recorded
=====================  ===============================  ====================================
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field, JsonValue, ValidationError

from protocols import (
    AgentList,
    DecideTask,
    ErrorCode,
    ErrorReply,
    EventList,
    GetGroup,
    GetTask,
    GoalSpec,
    GoalStatus,
    GroupInfo,
    ListAgents,
    ListEvents,
    ListTasks,
    Ok,
    PostChat,
    ProtocolError,
    SubmitGoal,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskSpec,
    TaskState,
    TaskStatus,
    ValidationStep,
    describe_errors,
    subjects,
)

from ...runtime.auth import may_call, participant_of
from .port import HubPort
from .worker import Worker

log = logging.getLogger("clawhub.mcp")

M = TypeVar("M", bound=BaseModel)
#: The port of the caller of one request (HTTP: from its bearer token; stdio: the one
#: token of the process). Raises ``ProtocolError`` when the caller is refused.
PortFor = Callable[[Context[Any, Any]], HubPort]

#: What the server tells a model about itself (the MCP ``instructions``).
INSTRUCTIONS = """\
Claw Hub: a coordination hub where AI agents and humans share work in a Claw Group.

Drive the group: submit_task (what to do, the skills it needs), then task_status or
list_tasks to follow it; list_agents and group_summary show who is there; approve_result and
reject_result decide results waiting for a human (human tokens only); chat talks to the group.

Work in the group: join_group with your skills, then loop: take_next_task (waits up to 30 s;
call it again when it returns no task), report_progress while you work (at least every
`stall_timeout` seconds of the task, or the hub takes it back), submit_result with your output
(or hand_back_task). Any tool call keeps you alive; after `window` seconds without one you are
lost and the hub gives your task to someone else.
"""

Skills = Annotated[
    dict[str, float],
    Field(
        description='Skill name to level in 0..1, e.g. {"python": 0.6}. For a task: the lowest '
        "level a participant needs (0 = any level). For join_group: how good you are."
    ),
]
TaskId = Annotated[
    str,
    Field(
        description="A task id, as submit_task or list_tasks gave it (letters, digits, - _).",
        min_length=1,
        max_length=64,
    ),
]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


F = TypeVar("F", bound=Callable[..., Any])


def tool(server: MCPServer[Any], annotations: ToolAnnotations) -> Callable[[F], F]:
    """``@server.tool``, its description the function's docstring cleaned of the source's
    indentation (what a model reads)."""

    def register(fn: F) -> F:
        description = inspect.cleandoc(fn.__doc__ or "").replace("\n", " ")
        server.add_tool(fn, description=description, annotations=annotations)
        return fn

    return register


class HubRefused(ToolError):
    """The hub refused a request (it recorded the refusal), or did not answer."""


class Tooling:
    """What every tool shares: the caller's port, the workers held for callers."""

    def __init__(self, port_for: PortFor, window: float) -> None:
        self.port_for = port_for
        self.window = window
        self.workers: dict[tuple[str, str], Worker] = {}
        """The worker of each caller, by ``(group, token id)``."""

    def port(self, ctx: Context[Any, Any]) -> HubPort:
        """The caller's port (a refused token: a tool error)."""
        try:
            return self.port_for(ctx)
        except ProtocolError as exc:
            raise HubRefused(f"{exc.code.value}: {exc.message}") from None

    def worker(self, port: HubPort) -> Worker | None:
        """The caller's worker, if it joined."""
        who = port.principal
        return self.workers.get((who.group, who.token_id))

    def refuse(self, port: HubPort, where: str, exc: ProtocolError) -> HubRefused:
        """Record a refusal made here (never reached the hub), and the tool error for it."""
        port.refused(where, exc)
        return HubRefused(f"{exc.code.value}: {exc.message}")

    def build(self, port: HubPort, tool: str, model: type[M], /, **fields: Any) -> M:
        """A request model from a tool's arguments; a bad value: recorded, a tool error."""
        try:
            return model(**fields)
        except ValidationError as exc:
            error = ProtocolError(ErrorCode.INVALID, f"{tool}: {describe_errors(exc)}")
            raise self.refuse(port, f"mcp:{tool}", error) from None

    def allowed(self, port: HubPort, tool: str, verb: str) -> None:
        """Refuse, naming the role needed, a tool the token's role may not use."""
        who = port.principal
        if not may_call(who, verb):
            exc = ProtocolError(
                ErrorCode.FORBIDDEN,
                f"{tool} needs a human or admin token; this token ({who.token_id}) has the "
                f"role {who.role}: ask a person to run it, or use `clawhub token create "
                "--role human`",
            )
            raise self.refuse(port, subjects.api(who.group, who.token_id, verb), exc)

    async def ask(self, port: HubPort, verb: str, message: BaseModel, reply: type[M]) -> M:
        """One API request; the hub's refusal (recorded by the hub) as a tool error."""
        try:
            answer = await port.api(verb, message)
        except ProtocolError as exc:
            raise HubRefused(f"{exc.code.value}: {exc.message}") from None
        if isinstance(answer, ErrorReply):
            raise HubRefused(f"{answer.code.value}: {answer.message}")
        if not isinstance(answer, reply):
            raise HubRefused(f"internal: the hub answered {type(answer).__name__}")
        return answer

    async def leave_all(self, reason: str) -> None:
        """Every worker leaves (the server stops)."""
        for worker in list(self.workers.values()):
            await worker.leave(reason)
        self.workers.clear()


class ClawMcp(MCPServer[Any]):
    """``MCPServer`` whose bad calls are recorded: an unknown tool or arguments that break a
    tool's schema are answered with the SDK's error and recorded as refused; every call of
    a caller that joined as a worker keeps that worker alive."""

    tooling: Tooling

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        port: HubPort | None = None
        if context is not None:
            try:
                port = self.tooling.port_for(context)
            except ProtocolError:
                port = None
        if port is not None and (worker := self.tooling.worker(port)) is not None:
            worker.touch()
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if port is not None and not isinstance(cause, HubRefused):
                if isinstance(exc, UnexpectedToolError):
                    code = ErrorCode.INTERNAL
                elif isinstance(cause, ValidationError):
                    code = ErrorCode.INVALID
                else:
                    code = ErrorCode.UNKNOWN_TYPE  # no such tool
                port.refused(f"mcp:{name}", ProtocolError(code, str(exc)[:2000]))
            raise


def dump(model: BaseModel) -> dict[str, Any]:
    """A reply as JSON data."""
    return model.model_dump(mode="json", exclude={"type"})


def task_line(task: TaskStatus) -> dict[str, Any]:
    """One task, short."""
    return {
        "task_id": task.id,
        "title": task.spec.title,
        "state": task.state.value,
        "assigned_to": task.assigned_to,
        "attempt": task.attempt,
    }


def add_assistant_tools(server: MCPServer[Any], t: Tooling) -> None:
    """Add the tools of a person's assistant."""

    @tool(server, WRITES)
    async def submit_task(
        title: Annotated[str, Field(description="Short title of the task.", max_length=300)],
        skills: Skills,
        ctx: Context[Any, Any],
        instructions: Annotated[str, Field(description="What to do, in words.")] = "",
        input: Annotated[JsonValue, Field(description="Input data (any JSON).")] = None,
        task_id: Annotated[
            str | None, Field(description="Choose the task's id (default: the hub picks one).")
        ] = None,
        depends_on: Annotated[
            list[str], Field(description="Ids of tasks that must be done first.")
        ] = [],  # noqa: B006 - the SDK copies defaults into each call's arguments
        acceptance: Annotated[
            list[str], Field(description="Acceptance criteria, in words, for reviewers.")
        ] = [],  # noqa: B006
        human_review: Annotated[
            bool, Field(description="A human must approve the result before it is done.")
        ] = False,
        priority: Annotated[int, Field(description="Higher runs first.", ge=-1000, le=1000)] = 0,
    ) -> dict[str, Any]:
        """Submit one task to the group. The hub gives it to the best participant with the
        skills (an agent or a person), watches it and validates the result. Returns the task
        id; follow it with task_status."""
        port = t.port(ctx)
        spec = t.build(
            port,
            "submit_task",
            TaskSpec,
            title=title,
            instructions=instructions,
            input=input,
            skills=skills,
            id=task_id,
            depends_on=depends_on,
            acceptance=acceptance,
            priority=priority,
            validation=[ValidationStep(kind="human")] if human_review else [],
        )
        reply = await t.ask(port, subjects.API_SUBMIT, SubmitTasks(tasks=[spec]), Submitted)
        return {"task_id": reply.ids[0], "next": "task_status(task_id) tells how it goes"}

    @tool(server, WRITES)
    async def submit_goal(
        text: Annotated[str, Field(description="The goal, in words.", max_length=50_000)],
        ctx: Context[Any, Any],
        approve_plan: Annotated[
            bool, Field(description="A human must approve the plan before any task starts.")
        ] = False,
        budget: Annotated[
            float | None, Field(description="Most USD the goal's tasks may spend on models.")
        ] = None,
    ) -> dict[str, Any]:
        """Hand the group a whole goal: the coordinator model plans it into a graph of tasks
        and the hub runs them. Needs the coordinator model's API key on the hub
        (group_summary says whether it is ready)."""
        port = t.port(ctx)
        goal = t.build(
            port, "submit_goal", GoalSpec, text=text, approve_plan=approve_plan, budget=budget
        )
        reply = await t.ask(port, subjects.API_GOAL_SUBMIT, SubmitGoal(goal=goal), GoalStatus)
        return dump(reply)

    @tool(server, READ_ONLY)
    async def task_status(task_id: TaskId, ctx: Context[Any, Any]) -> dict[str, Any]:
        """One task's status: its state, who holds it, each attempt and why it ended, the
        output once done."""
        port = t.port(ctx)
        message = t.build(port, "task_status", GetTask, task_id=task_id)
        return dump(await t.ask(port, subjects.API_TASK, message, TaskStatus))

    @tool(server, READ_ONLY)
    async def list_tasks(
        ctx: Context[Any, Any],
        states: Annotated[
            list[TaskState], Field(description="Only tasks in these states (default: all).")
        ] = [],  # noqa: B006
        limit: Annotated[int, Field(description="At most this many.", ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The group's tasks, oldest first: id, title, state, holder, attempt."""
        port = t.port(ctx)
        message = ListTasks(states=states, limit=limit)
        reply = await t.ask(port, subjects.API_TASKS, message, TaskList)
        return {"tasks": [task_line(task) for task in reply.tasks]}

    @tool(server, READ_ONLY)
    async def list_agents(
        ctx: Context[Any, Any],
        include_gone: Annotated[bool, Field(description="Include lost and departed.")] = False,
    ) -> dict[str, Any]:
        """The participants (agents and people): skills, state, load, reliability."""
        port = t.port(ctx)
        message = ListAgents(include_gone=include_gone)
        reply = await t.ask(port, subjects.API_AGENTS, message, AgentList)
        return {
            "agents": [
                {
                    "agent_id": a.profile.id,
                    "name": a.profile.name,
                    "kind": a.profile.kind,
                    "state": a.state,
                    "skills": a.profile.skills,
                    "load": a.load,
                    "capacity": a.profile.capacity,
                    "reliability": round(a.reliability, 3),
                }
                for a in reply.agents
            ]
        }

    @tool(server, READ_ONLY)
    async def group_summary(ctx: Context[Any, Any]) -> dict[str, Any]:
        """The group at a glance: tasks and goals by state, participants online, model usage,
        whether the coordinator model is ready."""
        port = t.port(ctx)
        return dump(await t.ask(port, subjects.API_GROUP, GetGroup(), GroupInfo))

    async def decide(
        ctx: Context[Any, Any], tool: str, task_id: str, accept: bool, reason: str
    ) -> dict[str, Any]:
        port = t.port(ctx)
        t.allowed(port, tool, subjects.API_DECIDE)
        by = participant_of(port.principal)
        message = t.build(
            port, tool, DecideTask, task_id=task_id, accept=accept, reason=reason, by=by
        )
        reply = await t.ask(port, subjects.API_DECIDE, message, TaskStatus)
        return task_line(reply)

    @tool(server, WRITES)
    async def approve_result(
        task_id: TaskId,
        ctx: Context[Any, Any],
        reason: Annotated[str, Field(description="Why (kept in the record).")] = "",
    ) -> dict[str, Any]:
        """Approve a result that waits for a human (state needs_human): the task is done.
        Human and admin tokens only."""
        return await decide(ctx, "approve_result", task_id, True, reason)

    @tool(server, WRITES)
    async def reject_result(
        task_id: TaskId,
        reason: Annotated[str, Field(description="What is wrong: sent to whoever reworks it.")],
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        """Reject a result that waits for a human (state needs_human): the task goes back for
        rework with the reason. Human and admin tokens only."""
        return await decide(ctx, "reject_result", task_id, False, reason)

    @tool(server, WRITES)
    async def chat(
        text: Annotated[str, Field(description="The message.", min_length=1, max_length=10_000)],
        ctx: Context[Any, Any],
        task_id: Annotated[str | None, Field(description="The task it is about, if any.")] = None,
    ) -> dict[str, Any]:
        """Post a line in the group's shared channel (people see it in the TUI)."""
        port = t.port(ctx)
        sender = participant_of(port.principal)
        message = t.build(port, "chat", PostChat, sender=sender, text=text, task_id=task_id)
        await t.ask(port, subjects.API_CHAT, message, Ok)
        return {"posted": True, "as": sender}


#: Events per read of ``clawhub://events``.
EVENT_PAGE = 500


def add_resources(server: MCPServer[Any], t: Tooling) -> None:
    """Add the tasks and the event log as resources."""

    async def read(ctx: Context[Any, Any], verb: str, message: BaseModel, reply: type[M]) -> M:
        try:
            return await t.ask(t.port(ctx), verb, message, reply)
        except ToolError as exc:
            raise ResourceError(str(exc)) from None

    def text(data: object) -> str:
        return json.dumps(data, indent=1, ensure_ascii=False)

    @server.resource("clawhub://tasks{?state}", mime_type="application/json", name="tasks")
    async def tasks(ctx: Context[Any, Any], state: str = "") -> str:
        """The group's tasks, oldest first (id, title, state, holder, attempt); ``state``:
        only tasks in that state."""
        try:
            message = ListTasks(states=[TaskState(state)] if state else [], limit=1000)
        except ValueError as exc:
            raise ResourceError(f"invalid: {exc}") from None
        reply = await read(ctx, subjects.API_TASKS, message, TaskList)
        return text([task_line(task) for task in reply.tasks])

    @server.resource("clawhub://tasks/{task_id}", mime_type="application/json", name="task")
    async def task(task_id: str, ctx: Context[Any, Any]) -> str:
        """One task's whole status."""
        try:
            message = GetTask(task_id=task_id)
        except ValidationError as exc:
            raise ResourceError(f"invalid: {describe_errors(exc)}") from None
        return text(dump(await read(ctx, subjects.API_TASK, message, TaskStatus)))

    @server.resource(
        "clawhub://events{?after,task_id}", mime_type="application/json", name="events"
    )
    async def events(ctx: Context[Any, Any], after: int = 0, task_id: str = "") -> str:
        """The group's event log, oldest first, EVENT_PAGE events after seq ``after`` (of one
        task with ``task_id``); ``next_after`` reads the next page."""
        try:
            message = ListEvents(after=after, limit=EVENT_PAGE, task_id=task_id or None)
        except ValidationError as exc:
            raise ResourceError(f"invalid: {describe_errors(exc)}") from None
        reply = await read(ctx, subjects.API_EVENTS, message, EventList)
        rows = [dump(e) for e in reply.events]
        last = reply.events[-1].seq if reply.events else after
        return text({"events": rows, "next_after": last})
