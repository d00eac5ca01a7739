"""The A2A request handler of one group: the a2a-sdk's ``RequestHandler``, with the hub as
the task store of record (an A2A task id is our task id, or a goal id for a free-text
message). Every method acts for the caller's ``Principal`` through ``Gateway.call``, so an
A2A caller has exactly the roles and limits of a REST or WebSocket caller, and every refusal
is recorded by the hub as on any other path.

=========================  ===========================================================
A2A method                 hub
=========================  ===========================================================
SendMessage                ``submit`` (a task) or ``goal_submit`` (free text); blocking
                           until done, failed, cancelled or needs_human (at most
                           ``blocking_wait`` seconds) unless ``returnImmediately``
SendStreamingMessage       the same, then the task's events as status updates
GetTask                    ``task`` (or ``goal``)
ListTasks                  ``tasks``, filtered by context and state, newest first
CancelTask                 ``cancel`` (or ``goal_cancel``): humans and admins only
SubscribeToTask            the task's events as status updates
GetExtendedAgentCard       the card with who offers each skill (``agents``)
push notification configs  not supported (``PushNotificationNotSupportedError``)
=========================  ===========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event as A2AEvent
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.types import TaskState as A2AState
from a2a.utils.errors import (
    A2AError,
    PushNotificationNotSupportedError,
    UnsupportedOperationError,
)
from pydantic import BaseModel

from protocols import (
    CancelGoal,
    CancelTask,
    ErrorCode,
    ErrorReply,
    Event,
    GetGoal,
    GetGroup,
    GetTask,
    GoalStatus,
    ListAgents,
    ListTasks,
    ProtocolError,
    SubmitGoal,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskStatus,
    subjects,
)
from protocols import TaskState as HubState

from ...runtime.auth import Principal
from ..state import Gateway
from . import mapping as m
from .card import group_card
from .follow import Follower

#: Seconds a blocking ``SendMessage`` waits for a task to finish (or need a human) before
#: it answers with the task as it is (the client then polls ``GetTask`` or subscribes).
BLOCKING_WAIT = 30.0
#: Our task states by name (an event's ``state``).
_STATES = {s.value: s for s in HubState}
#: Seconds a stream waits for an event before it reads the task again anyway.
REREAD = 5.0


@dataclass
class Call:
    """One A2A request as the server saw it: the caller, its token, where it came, and
    whether its refusal is already in the event log (set by the handler)."""

    who: Principal
    token: str
    where: str
    base: str = ""
    """``scheme://host:port`` the request came to (for the extended card's URLs)."""
    recorded: bool = False


def call_of(context: ServerCallContext) -> Call:
    """The ``Call`` the server put in the context (``A2AServer`` admits only callers)."""
    call = context.state.get("clawhub")
    if not isinstance(call, Call):  # pragma: no cover - the server always sets it
        raise RuntimeError("no caller in the A2A context")
    return call


class GroupHandler(RequestHandler):
    """A2A for one group, over ``Gateway.call``."""

    def __init__(
        self,
        gw: Gateway,
        group: str,
        blocking_wait: float = BLOCKING_WAIT,
    ) -> None:
        self.gw = gw
        self.group = group
        self.blocking_wait = blocking_wait

    # -- one way in ---------------------------------------------------------------------

    async def _call(
        self, call: Call, verb: str, message: BaseModel, cancel: bool = False
    ) -> BaseModel:
        reply = await self.gw.call(call.who, verb, message)
        if isinstance(reply, ErrorReply):
            call.recorded = True  # the hub recorded its refusal
            raise m.a2a_error(reply.code, reply.message, cancel=cancel)
        return reply

    def _refuse(self, call: Call, error: ProtocolError) -> A2AError:
        """Record a refusal made here (before any hub call) and return its A2A error."""
        self.gw.refused(self.group, call.where, error, call.who.agent_id)
        call.recorded = True
        return m.a2a_error(error.code, error.message)

    def _is_goal(self, task_id: str) -> bool:
        board = self.gw.hubs[self.group].board
        return task_id not in board.tasks and task_id in board.goals

    async def _read(self, call: Call, task_id: str, history: bool = True) -> Task:
        if self._is_goal(task_id):
            goal = await self._call(call, subjects.API_GOAL, GetGoal(goal_id=task_id))
            assert isinstance(goal, GoalStatus)
            return m.goal_to_task(goal, history=history)
        status = await self._call(call, subjects.API_TASK, GetTask(task_id=task_id))
        assert isinstance(status, TaskStatus)
        return m.to_task(status, history=history)

    # -- messages -----------------------------------------------------------------------

    async def _submit(self, call: Call, params: SendMessageRequest, follower: Follower) -> Task:
        message = params.message
        if message.task_id:
            raise self._refuse(
                call,
                ProtocolError(
                    ErrorCode.INVALID,
                    f"a follow-up message to task {message.task_id} is not supported: "
                    "send a new message (a task takes no further input once submitted)",
                ),
            )
        try:
            wanted = m.read_message(message, m.struct_dict(params.metadata))
        except ProtocolError as exc:
            raise self._refuse(call, exc) from None
        if wanted.goal is not None:
            follower.goals.add(str(wanted.goal.id))  # before the submission: no event missed
            goal = await self._call(call, subjects.API_GOAL_SUBMIT, SubmitGoal(goal=wanted.goal))
            assert isinstance(goal, GoalStatus)
            return m.goal_to_task(goal)
        assert wanted.task is not None
        follower.ids.add(str(wanted.task.id))
        submitted = await self._call(call, subjects.API_SUBMIT, SubmitTasks(tasks=[wanted.task]))
        assert isinstance(submitted, Submitted)
        return await self._read(call, submitted.ids[0])

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        call = call_of(context)
        with Follower(self.gw, self.group, call.token).running() as follower:
            task = await self._submit(call, params, follower)
            if params.configuration.return_immediately:
                return task
            with contextlib.suppress(TimeoutError):  # still going: answer with it as it is
                async with asyncio.timeout(self.blocking_wait):
                    async for fresh in self._updates(call, task, follower):
                        state = fresh.status.state
                        if state in m.FINAL or state in m.INTERRUPTED:
                            break
            return await self._read(call, task.id)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        call = call_of(context)
        with Follower(self.gw, self.group, call.token).running() as follower:
            # the stream tells the task's story from its submission: the follower holds
            # every event since (on a fast worker and a slow store it may be done already)
            task = m.as_submitted(await self._submit(call, params, follower))
            yield task
            async for event in self._stream(call, task, follower):
                yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        call = call_of(context)
        with Follower(self.gw, self.group, call.token).running() as follower:
            (follower.goals if self._is_goal(params.id) else follower.ids).add(params.id)
            task = await self._read(call, params.id)
            if task.status.state in m.FINAL:
                raise UnsupportedOperationError(
                    f"task {params.id} is {A2AState.Name(task.status.state)}: it has "
                    "no more updates (GetTask reads it)"
                )
            yield task
            async for event in self._stream(call, task, follower):
                yield event

    async def _updates(self, call: Call, task: Task, follower: Follower) -> AsyncGenerator[Task]:
        """``task`` as it changes: once per event about it (or every ``REREAD`` seconds),
        until it is final or the token is revoked."""
        last = (task.status.state, task.status.message.parts[0].text)
        while task.status.state not in m.FINAL:
            try:
                event = await follower.next(REREAD)
            except TimeoutError:
                event = None
                fresh = await self._read(call, task.id, history=False)
            else:
                if event is None:
                    return  # the token was revoked
                fresh = await self._fresh(call, task, event)
            now = (fresh.status.state, fresh.status.message.parts[0].text)
            if now != last:
                last = now
                task = fresh
                yield task

    async def _fresh(self, call: Call, task: Task, event: Event) -> Task:
        """The task after ``event``: the event's own state and message while it runs (so a
        stream shows every step), the hub's full status once it is final."""
        state = _STATES.get(event.state or "")
        if event.task_id != task.id or state is None or state.terminal:
            return await self._read(call, task.id, history=False)
        fresh = Task()
        fresh.CopyFrom(task)
        fresh.status.state = m.TASK_STATES[state]  # type: ignore[assignment]
        fresh.status.message.parts[0].text = event.message or event.kind
        fresh.status.timestamp.FromSeconds(int(event.ts))
        return fresh

    async def _stream(self, call: Call, task: Task, follower: Follower) -> AsyncGenerator[A2AEvent]:
        async for fresh in self._updates(call, task, follower):
            final = fresh.status.state in m.FINAL
            if final and fresh.artifacts:
                yield m.artifact_update(fresh)
            yield m.status_update(fresh, final=final)

    # -- reads and cancel ---------------------------------------------------------------

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        task = await self._read(call_of(context), params.id)
        if params.HasField("history_length") and params.history_length == 0:
            del task.history[:]
        return task

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        call = call_of(context)
        size = params.page_size if params.HasField("page_size") else 50
        if not 1 <= size <= 100:
            raise self._refuse(call, ProtocolError(ErrorCode.INVALID, "pageSize must be 1..100"))
        try:
            offset = int(params.page_token or 0)
        except ValueError:
            raise self._refuse(
                call, ProtocolError(ErrorCode.INVALID, "pageToken is not one this server gave")
            ) from None
        states = m.hub_states(params.status) if params.status else []
        listed = await self._call(call, subjects.API_TASKS, ListTasks(states=states, limit=100_000))
        assert isinstance(listed, TaskList)
        after = (
            params.status_timestamp_after.ToSeconds()
            if params.HasField("status_timestamp_after")
            else 0
        )
        found = [
            s
            for s in listed.tasks
            if (not params.context_id or m.context_of(s) == params.context_id)
            and s.updated_at >= after
        ]
        found.sort(key=lambda s: s.updated_at, reverse=True)
        page = found[offset : offset + size]
        history = not (params.HasField("history_length") and params.history_length == 0)
        more = offset + size < len(found)
        return ListTasksResponse(
            tasks=[m.to_task(s, history=history) for s in page],
            next_page_token=str(offset + size) if more else "",
            page_size=size,
            total_size=len(found),
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        call = call_of(context)
        reason = str(m.struct_dict(params.metadata).get("reason") or "cancelled over A2A")[:900]
        if self._is_goal(params.id):
            cancel_goal = CancelGoal(goal_id=params.id, reason=reason)
            await self._call(call, subjects.API_GOAL_CANCEL, cancel_goal, cancel=True)
        else:
            request = CancelTask(task_id=params.id, reason=reason)
            await self._call(call, subjects.API_CANCEL, request, cancel=True)
        return await self._read(call, params.id)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        call = call_of(context)
        agents = await self._call(call, subjects.API_AGENTS, ListAgents())
        info = await self._call(call, subjects.API_GROUP, GetGroup())
        return group_card(self.group, call.base, agents, info, extended=True)

    # -- not supported ------------------------------------------------------------------

    async def _no_push(self, context: ServerCallContext) -> PushNotificationNotSupportedError:
        return self._refuse_push(call_of(context))

    def _refuse_push(self, call: Call) -> PushNotificationNotSupportedError:
        error = ProtocolError(
            ErrorCode.INVALID, "push notifications are not supported: stream or poll instead"
        )
        self.gw.refused(self.group, call.where, error, call.who.agent_id)
        call.recorded = True
        return PushNotificationNotSupportedError(error.message)

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise await self._no_push(context)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise await self._no_push(context)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise await self._no_push(context)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise await self._no_push(context)
