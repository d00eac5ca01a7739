"""``GroupSession``: the TUI's link to the hub, over the bus only (``HubClient`` + the human
participant). It keeps a ``GroupModel`` fresh and carries out the human's actions.

The model is fed two ways: the live event stream (each task event re-reads that task at
once, agent and goal events the participants and the goals; ``chat.message`` events become
chat lines), and a full read of agents, tasks, goals and the group summary every ``refresh``
seconds that catches whatever the stream missed (a reconnect). The model's listeners are
told only of changes, so an idle group costs no redraw. Every action raises the SDK's errors
(``RequestRefused``, ``HubUnavailable``, ...); the app shows them as notifications.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from pydantic import JsonValue

from agents_sdk import HubClient, SDKError
from protocols import (
    AgentInfo,
    AgentMode,
    ClawHubError,
    Device,
    Event,
    GoalSpec,
    GoalStatus,
    TaskSpec,
    TaskStatus,
)

from .human import HumanParticipant
from .model import GroupModel

__all__ = ["GroupSession"]

log = logging.getLogger("tui")

#: The event log is read in pages of this many events at start, at most this many pages.
HISTORY_PAGE = 1000
HISTORY_PAGES = 50

#: Marks in the refresher's dirty set, besides task ids (which are identifiers: no spaces).
AGENTS = "<agents>"
GOALS = "<goals>"

#: ``stop`` returns within this many seconds, whatever the hub and the bus do.
STOP_TIMEOUT = 5.0
#: Of which the cancelled loops get at most this long to end.
LOOPS_TIMEOUT = 1.0
#: Results already written get this long to reach the hub when the human leaves.
LEAVE_TIMEOUT = 2.0


async def _settle(tasks: list[asyncio.Task[None]], timeout: float, what: str) -> None:
    """Wait up to ``timeout`` for ``tasks``; cancel and abandon those still running (unlike
    ``gather`` or ``wait_for``, never wait for a task that ignores its cancellation)."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        log.warning("%s did not end within %.1fs; abandoned", what, timeout)
        task.cancel()


class GroupSession:
    """Joins a group as a human participant and mirrors the group into ``model``."""

    def __init__(
        self,
        url: str,
        name: str,
        *,
        skills: dict[str, float] | None = None,
        capacity: int = 3,
        id: str | None = None,
        group: str = "default",
        device: Device = "laptop",
        refresh: float = 5.0,
        timeout: float = 10.0,
        model: GroupModel | None = None,
    ) -> None:
        self.url = url
        self.refresh = refresh
        self.client = HubClient(url, group=group, timeout=timeout)
        self.human = HumanParticipant(
            name,
            skills=skills,
            capacity=capacity,
            id=id,
            group=group,
            device=device,
            on_change=self._work_changed,
        )
        self.model = model or GroupModel(group, self.human.id)
        self.model.me = self.human.id
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.goals_supported = True
        self._epoch = 0
        """Bumped by every action's reply: a poll that began before it is stale, dropped."""
        self._stopped = False

    @property
    def me(self) -> str:
        """The human participant's id."""
        return self.human.id

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, join as a participant, read the group once, then keep it fresh.
        Raises ``HubUnavailable`` (and friends) when the hub cannot be reached."""
        await self.client.connect()
        try:
            await self.human.start(self.url, timeout=self.client.timeout)
            await self.sync()
            await self._load_history()
        except BaseException:
            await self.client.close()
            raise
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name="tui-poll"),
            asyncio.create_task(self._event_loop(), name="tui-events"),
            asyncio.create_task(self._task_refresher(), name="tui-task-refresh"),
        ]

    async def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the loops, leave the group (``agent.left``: a person leaving is not a crash),
        close the connection. Bounded: it returns within about ``timeout`` seconds whatever
        state the hub and the bus are in (down, restarting, a request stuck on a dead
        connection); what does not finish in time is abandoned, never waited for. A second
        call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        loops, self._tasks = self._tasks, []
        for task in loops:
            task.cancel()
        await _settle(loops, min(LOOPS_TIMEOUT, timeout), "the session's loops")
        leave = asyncio.create_task(self._leave(), name="tui-leave")
        await _settle([leave], max(0.1, deadline - loop.time()), "leaving the group")
        close = asyncio.create_task(self.client.close(), name="tui-close")
        await _settle([close], max(0.1, deadline - loop.time()), "closing the connection")

    async def _leave(self) -> None:
        """Deregister (when the hub is reachable) and close the participant's connection."""
        try:
            await self.human.stop(timeout=LEAVE_TIMEOUT)
        except ClawHubError as exc:
            log.info("leaving the group: %s", exc)

    # -- reading ----------------------------------------------------------------------------

    async def sync(self) -> None:
        """Read agents, tasks, goals and the group summary now. The listeners are told
        only when something changed: an idle group costs no redraw."""
        model = self.model
        epoch = self._epoch
        try:
            agents = await self.client.agents(include_gone=True)
            tasks = await self.client.tasks(limit=5000)
        except SDKError as exc:
            status = f"hub unreachable: {exc}"
            if model.connected or model.status != status:
                model.connected = False
                model.status = status
                model.touch()
            return
        if epoch != self._epoch:
            return  # an action's newer reply came in meanwhile; the next poll is fresh
        changed = model.set_agents(agents)
        changed = model.set_tasks(tasks) or changed
        if self.goals_supported:
            try:
                changed = model.set_goals(await self.client.goals()) or changed
                model.info = await self.client.group_info()
            except SDKError as exc:
                log.debug("goals or group summary unavailable: %s", exc)
        status = f"connected to {self.url}"
        if changed or not model.connected or model.status != status:
            model.connected = True
            model.status = status
            model.touch()

    async def load_log(self, task_id: str) -> None:
        """Read a task's stored event log (log lines, offers, revokes) into the model."""
        self.model.set_log(task_id, await self.client.history(task_id))
        self.model.touch()

    async def refresh_task(self, task_id: str) -> TaskStatus:
        """Read one task now."""
        status = await self.client.task(task_id)
        self.model.set_task(status)
        self.model.touch()
        return status

    async def _load_history(self) -> None:
        """The recent event log and chat, oldest first, so the panels start filled."""
        try:
            recent = await self._tail(None, self.model.events.maxlen or 1000)
            chat = await self._tail("chat.message", self.model.chat.maxlen or 500)
        except SDKError as exc:
            log.debug("event history unavailable: %s", exc)
            return
        for event in sorted({e.seq: e for e in [*recent, *chat]}.values(), key=lambda e: e.seq):
            self.model.add_event(event)
        self.model.touch()

    async def _tail(self, kind: str | None, keep: int) -> list[Event]:
        """The last ``keep`` stored events (of ``kind``), read page by page."""
        tail: deque[Event] = deque(maxlen=keep)
        after = 0
        for _ in range(HISTORY_PAGES):
            page = await self.client.history(kind=kind, after=after, limit=HISTORY_PAGE)
            tail.extend(page)
            if len(page) < HISTORY_PAGE:
                break
            after = page[-1].seq
        return list(tail)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            await self.sync()

    async def _event_loop(self) -> None:
        while True:
            try:
                async for event in self.client.events():
                    if not self.model.add_event(event):
                        continue
                    if event.task_id is not None and event.kind == "task.progress":
                        self._progress(event.task_id, event.data.get("fraction"), event.message)
                    elif event.task_id is not None:
                        self._dirty.add(event.task_id)
                        if event.kind != "task.log":  # an agent's load may have changed
                            self._dirty.add(AGENTS)
                    if event.kind.startswith("agent."):
                        self._dirty.add(AGENTS)
                    elif event.kind.startswith("goal."):
                        self._dirty.add(GOALS)
                    if self._dirty:
                        self._wake.set()
                    self.model.touch()
            except (SDKError, RuntimeError) as exc:  # connection closed under us: retry
                log.debug("event stream: %s", exc)
                await asyncio.sleep(self.refresh)

    def _progress(self, task_id: str, fraction: JsonValue, message: str) -> None:
        task = self.model.tasks.get(task_id)
        if task is None:
            return
        if isinstance(fraction, int | float):
            task.progress = float(fraction)
        if message:
            task.progress_message = message

    async def _task_refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                if AGENTS in dirty:
                    self.model.set_agents(await self.client.agents(include_gone=True))
                if GOALS in dirty and self.goals_supported:
                    self.model.set_goals(await self.client.goals())
            except SDKError as exc:
                log.debug("refresh of agents or goals: %s", exc)
            for task_id in dirty - {AGENTS, GOALS}:
                try:
                    self.model.set_task(await self.client.task(task_id))
                    if task_id in self.model.logs:
                        self.model.set_log(task_id, await self.client.history(task_id))
                except SDKError as exc:
                    log.debug("refresh of %s: %s", task_id, exc)
            self.model.touch()

    def _work_changed(self) -> None:
        self.model.work = dict(self.human.items)
        self.model.touch()

    # -- acting -----------------------------------------------------------------------------

    async def submit(self, spec: TaskSpec) -> str:
        """Submit a task; its id."""
        [task_id] = await self.client.submit(spec)
        await self.refresh_task(task_id)
        return task_id

    async def decide(self, task_id: str, accept: bool, reason: str = "") -> TaskStatus:
        """Approve or reject a result waiting in ``needs_human``."""
        status = await self.client.decide(task_id, accept, reason, by=self.me)
        return self._updated(status)

    async def claim(self, task_id: str) -> TaskStatus:
        """Take a ready task: the hub offers it to this human at once."""
        return self._updated(await self.client.claim(task_id, self.me))

    async def reassign(self, task_id: str, to: str | None = None, reason: str = "") -> TaskStatus:
        """Take a task from its holder and offer it again (to ``to`` if given)."""
        status = await self.client.reassign(task_id, to, reason, by=self.me)
        return self._updated(status)

    async def cancel(self, task_id: str, reason: str = "") -> TaskStatus:
        """Cancel a task that has not finished."""
        return self._updated(await self.client.cancel(task_id, reason, by=self.me))

    async def set_mode(self, agent_id: str, mode: AgentMode, reason: str = "") -> AgentInfo:
        """Pause, resume (``active``) or drain a participant."""
        info = await self.client.set_agent_mode(agent_id, mode, reason, by=self.me)
        self._epoch += 1
        self.model.set_agent(info)
        self.model.touch()
        return info

    async def chat(self, text: str, task_id: str | None = None) -> None:
        """Post a line in the group's shared channel (it comes back as an event)."""
        await self.client.chat(self.me, text, task_id)

    async def complete(self, task_id: str, output: JsonValue) -> None:
        """Submit the result of one of this human's work items."""
        self.human.complete(task_id, output)

    async def give_up(self, task_id: str, reason: str) -> None:
        """Fail this human's attempt (counted as a failed attempt)."""
        self.human.give_up(task_id, reason)

    async def hand_back(self, task_id: str, reason: str = "") -> TaskStatus:
        """Give a work item back without a failure: the hub offers it to someone else."""
        return await self.reassign(task_id, None, reason or f"handed back by {self.me}")

    async def submit_goal(self, goal: GoalSpec) -> GoalStatus:
        """Submit a goal for the coordinator to plan."""
        status = await self.client.submit_goal(goal)
        self.model.set_goal(status)
        self.model.touch()
        return status

    async def decide_plan(self, goal_id: str, approve: bool, reason: str = "") -> GoalStatus:
        """Approve or reject the plan of a goal waiting in ``awaiting_approval``."""
        status = await self.client.decide_plan(goal_id, approve, by=self.me, reason=reason)
        self.model.set_goal(status)
        self.model.touch()
        return status

    def _updated(self, status: TaskStatus) -> TaskStatus:
        self._epoch += 1
        self.model.set_task(status)
        self.model.touch()
        return status
