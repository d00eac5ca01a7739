"""``HubClient``: submit tasks, list agents and tasks, cancel, wait, stream events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel, JsonValue

from protocols import (
    GOAL_TERMINAL,
    AgentInfo,
    AgentList,
    AgentMode,
    CancelGoal,
    CancelTask,
    ClaimTask,
    DecidePlan,
    DecideTask,
    Event,
    EventList,
    GetGoal,
    GetGroup,
    GetTask,
    GoalList,
    GoalSpec,
    GoalStatus,
    GroupInfo,
    ListAgents,
    ListEvents,
    ListGoals,
    ListTasks,
    Ok,
    Plan,
    PostChat,
    ProtocolError,
    ReassignTask,
    SetAgentMode,
    SubmitGoal,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskSpec,
    TaskState,
    TaskStatus,
    decode,
    subjects,
)

from ._bus import connect, request
from ._local import URL_ENV, local_admin_token, local_hub_url
from ._transport import TOKEN_ENV, nats_token
from .errors import WaitTimeout

log = logging.getLogger("agents_sdk")

#: While waiting, re-read the tasks this often in case an event was missed (reconnects).
POLL_INTERVAL = 5.0

_R = TypeVar("_R", bound=BaseModel)


class HubClient:
    """A client of the hub's API (``protocols.subjects.api``) and event stream.

    ::

        async with HubClient("nats://127.0.0.1:4222") as hub:
            [task_id] = await hub.submit(TaskSpec(title="say hi", skills={"python": 0.5}))
            status = await hub.wait(task_id, timeout=60)

    Every request raises ``RequestRefused`` when the hub answers ``ErrorReply``,
    ``HubUnavailable`` when nobody answers, ``RequestTimeout`` after ``timeout`` seconds.
    """

    def __init__(
        self,
        url: str | None = None,
        group: str = "default",
        timeout: float = 10.0,
        *,
        token: str | None = None,
    ) -> None:
        """``url``: the hub's ``nats://`` URL; default: the local hub (``local_hub_url()``:
        ``CLAWHUB_NATS_URL``, else ``hub.json``), found when connecting. ``token``: from
        ``clawhub token create`` (the NATS user it stands for), wherever the hub's
        nats-server requires one; default: ``CLAWHUB_TOKEN``, else, for the local hub of
        ``hub.json``, its admin token for ``group`` (as the ``clawhub`` command does)."""
        subjects.api(group, subjects.ANON_SENDER, subjects.API_TASK)  # validates the group early
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.sender = subjects.sender_for(self.token)
        """Who sends, in every API subject: the token's id, else ``anon``."""
        self.url = url
        self.group = group
        self.timeout = timeout
        self._nc: NATS | None = None

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to NATS (``HubUnavailable`` if that fails within ``timeout``)."""
        if self._nc is None:
            if self.url is None:
                self.url = local_hub_url()
                if self.token is None and not os.environ.get(URL_ENV):
                    self.token = local_admin_token(self.group)
                    self.sender = subjects.sender_for(self.token)
            self._nc = await connect(self.url, timeout=self.timeout, **nats_token(self.token))

    async def close(self) -> None:
        """Drain and close the connection."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        try:
            await asyncio.wait_for(nc.drain(), 5.0)
        except Exception:
            with contextlib.suppress(Exception):
                await nc.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def nc(self) -> NATS:
        """The NATS connection (raises ``RuntimeError`` before ``connect``)."""
        if self._nc is None:
            raise RuntimeError("HubClient is not connected; use `async with` or connect()")
        return self._nc

    async def _call(self, verb: str, message: BaseModel, reply: type[_R]) -> _R:
        return await request(
            self.nc, subjects.api(self.group, self.sender, verb), message, reply, self.timeout
        )

    # -- tasks ------------------------------------------------------------------------------

    async def submit(self, spec_or_specs: TaskSpec | list[TaskSpec]) -> list[str]:
        """Submit one task or a batch (a graph: ``depends_on`` may name batch members)."""
        specs = [spec_or_specs] if isinstance(spec_or_specs, TaskSpec) else list(spec_or_specs)
        reply = await self._call(subjects.API_SUBMIT, SubmitTasks(tasks=specs), Submitted)
        return list(reply.ids)

    async def submit_task(
        self,
        title: str,
        *,
        skills: dict[str, float] | None = None,
        input: JsonValue = None,
        depends_on: list[str] | None = None,
        id: str | None = None,
        **fields: Any,
    ) -> str:
        """Build a ``TaskSpec`` from keywords (any ``TaskSpec`` field), submit it, return its id."""
        spec = TaskSpec(
            title=title,
            skills=dict(skills or {}),
            input=input,
            depends_on=list(depends_on or []),
            id=id,
            **fields,
        )
        [task_id] = await self.submit(spec)
        return task_id

    async def task(self, task_id: str) -> TaskStatus:
        """One task's status."""
        return await self._call(subjects.API_TASK, GetTask(task_id=task_id), TaskStatus)

    async def tasks(
        self, states: Iterable[TaskState | str] | None = None, limit: int = 1000
    ) -> list[TaskStatus]:
        """Tasks, oldest first, optionally only in ``states``."""
        message = ListTasks(states=[TaskState(s) for s in states or ()], limit=limit)
        return list((await self._call(subjects.API_TASKS, message, TaskList)).tasks)

    async def cancel(self, task_id: str, reason: str = "", *, by: str | None = None) -> TaskStatus:
        """Cancel a task that has not finished; returns its new status."""
        message = CancelTask(task_id=task_id, reason=reason, by=by)
        return await self._call(subjects.API_CANCEL, message, TaskStatus)

    # -- humans in the loop -----------------------------------------------------------------

    async def decide(self, task_id: str, accept: bool, reason: str = "", *, by: str) -> TaskStatus:
        """Approve (``accept=True``) or reject a result waiting in ``needs_human``. A rejection
        sends the task back for rework with ``reason`` attached."""
        message = DecideTask(task_id=task_id, accept=accept, reason=reason, by=by)
        return await self._call(subjects.API_DECIDE, message, TaskStatus)

    async def reassign(
        self, task_id: str, to: str | None = None, reason: str = "", *, by: str | None = None
    ) -> TaskStatus:
        """Take a task back from its holder (no failure counted) and offer it again, to ``to``
        if given, else to whoever the matcher picks (not the old holder)."""
        message = ReassignTask(task_id=task_id, to=to, reason=reason, by=by)
        return await self._call(subjects.API_REASSIGN, message, TaskStatus)

    async def claim(self, task_id: str, agent_id: str) -> TaskStatus:
        """Participant ``agent_id`` takes a ready task: the hub offers it to them next."""
        message = ClaimTask(task_id=task_id, agent_id=agent_id)
        return await self._call(subjects.API_CLAIM, message, TaskStatus)

    async def set_agent_mode(
        self, agent_id: str, mode: AgentMode, reason: str = "", *, by: str | None = None
    ) -> AgentInfo:
        """Pause (no new work), resume (``active``) or drain a participant."""
        message = SetAgentMode(agent_id=agent_id, mode=mode, reason=reason, by=by)
        return await self._call(subjects.API_AGENT_MODE, message, AgentInfo)

    async def chat(self, sender: str, text: str, task_id: str | None = None) -> None:
        """Post a line in the group's shared channel (a ``chat.message`` event)."""
        message = PostChat(sender=sender, text=text, task_id=task_id)
        await self._call(subjects.API_CHAT, message, Ok)

    async def group_info(self) -> GroupInfo:
        """The group at a glance: tasks and goals by state, agents, usage, coordinator."""
        return await self._call(subjects.API_GROUP, GetGroup(), GroupInfo)

    # -- goals ------------------------------------------------------------------------------

    async def submit_goal(
        self, goal: GoalSpec | str, plan: Plan | None = None, **fields: Any
    ) -> GoalStatus:
        """Submit a goal (a ``GoalSpec``, or its text plus ``GoalSpec`` keywords such as
        ``budget``, ``deadline``, ``approve_plan``). With ``plan`` no model is asked."""
        spec = goal if isinstance(goal, GoalSpec) else GoalSpec(text=goal, **fields)
        message = SubmitGoal(goal=spec, plan=plan)
        return await self._call(subjects.API_GOAL_SUBMIT, message, GoalStatus)

    async def goals(self, limit: int = 100) -> list[GoalStatus]:
        """Goals, oldest first."""
        reply = await self._call(subjects.API_GOALS, ListGoals(limit=limit), GoalList)
        return list(reply.goals)

    async def goal(self, goal_id: str) -> GoalStatus:
        """One goal's status: state, plan, progress, deliverable, usage."""
        return await self._call(subjects.API_GOAL, GetGoal(goal_id=goal_id), GoalStatus)

    async def decide_plan(
        self,
        goal_id: str,
        approve: bool,
        *,
        by: str,
        plan: Plan | None = None,
        reason: str = "",
    ) -> GoalStatus:
        """Approve (optionally an edited ``plan``) or reject a plan awaiting approval."""
        message = DecidePlan(goal_id=goal_id, approve=approve, plan=plan, reason=reason, by=by)
        return await self._call(subjects.API_GOAL_DECIDE, message, GoalStatus)

    async def cancel_goal(
        self, goal_id: str, reason: str = "", *, by: str | None = None
    ) -> GoalStatus:
        """Stop a goal and its open tasks."""
        message = CancelGoal(goal_id=goal_id, reason=reason, by=by)
        return await self._call(subjects.API_GOAL_CANCEL, message, GoalStatus)

    async def wait_goal(
        self, goal_id: str, timeout: float | None = None, *, until: Iterable[str] = ()
    ) -> GoalStatus:
        """Wait until the goal is done, failed or cancelled (or reaches a state in
        ``until``, such as ``awaiting_approval``); ``WaitTimeout`` after ``timeout``."""
        stop = {*GOAL_TERMINAL, *until}
        changed = asyncio.Event()

        async def on_event(msg: Msg) -> None:
            changed.set()

        sub = await self.nc.subscribe(subjects.goal_events(self.group), cb=on_event)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    status = await self.goal(goal_id)
                    if status.state in stop:
                        return status
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), POLL_INTERVAL)
        except TimeoutError:
            raise WaitTimeout([goal_id], timeout or 0.0) from None
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def agents(self, include_gone: bool = False) -> list[AgentInfo]:
        """The participants (online only, unless ``include_gone``)."""
        message = ListAgents(include_gone=include_gone)
        return list((await self._call(subjects.API_AGENTS, message, AgentList)).agents)

    # -- waiting and watching ---------------------------------------------------------------

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Wait until the task is done, failed or cancelled; ``WaitTimeout`` after ``timeout``."""
        [status] = await self.wait_all([task_id], timeout)
        return status

    async def wait_all(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
    ) -> list[TaskStatus]:
        """Wait until every task is terminal; their final statuses, in the order given."""
        order = list(task_ids)
        ids = list(dict.fromkeys(order))
        finished: dict[str, TaskStatus] = {}
        changed: asyncio.Queue[str] = asyncio.Queue()

        async def on_event(msg: Msg) -> None:
            try:
                event = decode(msg.data, Event)
            except ProtocolError as exc:
                log.debug("ignoring a bad event: %s", exc)
                return
            if event.task_id in ids and _is_terminal(event.state):
                changed.put_nowait(event.task_id)

        # Subscribe first, then read: an event between the two cannot be missed.
        sub = await self.nc.subscribe(subjects.task_events(self.group), cb=on_event)
        try:
            async with asyncio.timeout(timeout):
                await self.nc.flush()
                await self._refresh(ids, finished)
                while len(finished) < len(ids):
                    try:
                        task_id = await asyncio.wait_for(changed.get(), POLL_INTERVAL)
                    except TimeoutError:
                        await self._refresh(ids, finished)
                        continue
                    if task_id not in finished:
                        await self._refresh([task_id], finished)
        except TimeoutError:
            missing = [i for i in ids if i not in finished]
            raise WaitTimeout(missing, timeout or 0.0) from None
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return [finished[i] for i in order]

    async def _refresh(self, ids: list[str], finished: dict[str, TaskStatus]) -> None:
        for task_id in ids:
            if task_id not in finished:
                status = await self.task(task_id)
                if status.state.terminal:
                    finished[task_id] = status

    async def history(
        self,
        task_id: str | None = None,
        *,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[Event]:
        """The stored event log, oldest first: every assignment, loss, stall and retry with
        its reason. ``kind`` is a prefix (``"task.revoked"``, ``"agent."``)."""
        query = ListEvents(task_id=task_id, kind=kind, after=after, limit=limit)
        reply = await self._call(subjects.API_EVENTS, query, EventList)
        return reply.events

    async def events(self, kinds: Iterable[str] | None = None) -> AsyncGenerator[Event, None]:
        """Stream the group's events as they happen.

        ``kinds`` filters: ``"task.done"`` matches that kind, ``"task"`` every ``task.*``.
        """
        wanted = tuple(kinds) if kinds is not None else None
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def on_event(msg: Msg) -> None:
            try:
                queue.put_nowait(decode(msg.data, Event))
            except ProtocolError as exc:
                log.debug("ignoring a bad event: %s", exc)

        sub = await self.nc.subscribe(subjects.all_events(self.group), cb=on_event)
        try:
            while True:
                event = await queue.get()
                if wanted is None or any(_kind_matches(event.kind, k) for k in wanted):
                    yield event
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


def _is_terminal(state: str | None) -> bool:
    try:
        return state is not None and TaskState(state).terminal
    except ValueError:
        return False


def _kind_matches(kind: str, wanted: str) -> bool:
    return kind == wanted or kind.startswith(wanted.rstrip(".") + ".")
