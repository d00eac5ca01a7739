"""The hub's API: what clients, humans and the gateway may ask, one handler per verb of
``protocols.subjects.API_VERBS``.

Every handler takes the request message and returns the reply message (or raises
``ProtocolError``); the hub serves them on NATS (``Hub.start``) and every other front end
calls the same handlers through ``Hub.handle``. ``HubApi`` is given what it reads (the
board, the store, the coordinator's status) and nothing else of the hub.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from protocols import (
    AgentInfo,
    AgentList,
    CancelGoal,
    CancelTask,
    ClaimTask,
    DecidePlan,
    DecideTask,
    ErrorCode,
    Event,
    EventList,
    GetGoal,
    GetGroup,
    GetTask,
    GoalList,
    GoalStatus,
    GroupInfo,
    ListAgents,
    ListEvents,
    ListGoals,
    ListTasks,
    Ok,
    PostChat,
    ProtocolError,
    ReassignTask,
    SetAgentMode,
    SubmitGoal,
    SubmitTasks,
    Submitted,
    TaskList,
    TaskStatus,
    subjects,
)

from ..board import Board
from ..store import Store
from .coordinator import Coordinator
from .routes import Handler


class HubApi:
    """The API handlers of one hub."""

    def __init__(
        self,
        board: Board,
        store: Store,
        coordinator: Coordinator,
        durable: Callable[[], Awaitable[None]],
    ) -> None:
        """``durable``: wait until every write queued so far is committed."""
        self.board = board
        self.store = store
        self.coordinator = coordinator
        self.durable = durable

    def routes(self) -> list[tuple[str, tuple[type[BaseModel], ...], Handler]]:
        """``(verb, accepted request models, handler)`` for every API verb."""
        s = subjects
        return [
            (s.API_SUBMIT, (SubmitTasks,), self.submit),
            (s.API_AGENTS, (ListAgents,), self.list_agents),
            (s.API_TASKS, (ListTasks,), self.list_tasks),
            (s.API_TASK, (GetTask,), self.get_task),
            (s.API_CANCEL, (CancelTask,), self.cancel_task),
            (s.API_EVENTS, (ListEvents,), self.list_events),
            (s.API_DECIDE, (DecideTask,), self.decide),
            (s.API_REASSIGN, (ReassignTask,), self.reassign),
            (s.API_CLAIM, (ClaimTask,), self.claim),
            (s.API_AGENT_MODE, (SetAgentMode,), self.agent_mode),
            (s.API_CHAT, (PostChat,), self.chat),
            (s.API_GROUP, (GetGroup,), self.group),
            (s.API_GOAL_SUBMIT, (SubmitGoal,), self.submit_goal),
            (s.API_GOALS, (ListGoals,), self.list_goals),
            (s.API_GOAL, (GetGoal,), self.get_goal),
            (s.API_GOAL_DECIDE, (DecidePlan,), self.decide_plan),
            (s.API_GOAL_CANCEL, (CancelGoal,), self.cancel_goal),
        ]

    def submit(self, msg: SubmitTasks) -> Submitted:
        return Submitted(ids=self.board.submit(msg.tasks))

    def list_agents(self, msg: ListAgents) -> AgentList:
        agents = [
            a.info() for a in self.board.agents.values() if msg.include_gone or a.state == "online"
        ]
        return AgentList(agents=agents)

    def list_tasks(self, msg: ListTasks) -> TaskList:
        wanted = set(msg.states)
        recs = [r for r in self.board.tasks.values() if not wanted or r.state in wanted]
        recs.sort(key=lambda r: r.seq)
        return TaskList(tasks=[r.status() for r in recs[: msg.limit]])

    def get_task(self, msg: GetTask) -> BaseModel:
        rec = self.board.tasks.get(msg.task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {msg.task_id}")
        return rec.status()

    async def list_events(self, msg: ListEvents) -> EventList:
        await self.durable()  # what happened so far is in the log before it is read
        rows = await asyncio.to_thread(
            self.store.events,
            self.board.group,
            task_id=msg.task_id,
            kind=msg.kind,
            after=msg.after,
            limit=msg.limit,
        )
        return EventList(
            events=[
                Event(
                    seq=r.seq,
                    ts=r.ts,
                    kind=r.kind,
                    task_id=r.task_id,
                    agent_id=r.agent_id,
                    attempt=r.attempt,
                    state=r.state,
                    message=r.message,
                    data=json.loads(r.data),
                )
                for r in rows
            ]
        )

    def cancel_task(self, msg: CancelTask) -> BaseModel:
        self.board.check_human(msg.by, "cancel tasks")
        reason = msg.reason or "cancelled"
        if msg.by:
            reason = f"{reason} (by {msg.by})"
        return self.board.cancel_task(msg.task_id, reason).status()

    def decide(self, msg: DecideTask) -> TaskStatus:
        return self.board.decide(msg).status()

    def reassign(self, msg: ReassignTask) -> TaskStatus:
        return self.board.reassign(msg).status()

    def claim(self, msg: ClaimTask) -> TaskStatus:
        return self.board.claim(msg).status()

    def agent_mode(self, msg: SetAgentMode) -> AgentInfo:
        return self.board.set_mode(msg).info()

    def chat(self, msg: PostChat) -> Ok:
        self.board.chat(msg)
        return Ok()

    def group(self, _msg: GetGroup) -> GroupInfo:
        tasks: dict[str, int] = {}
        for rec in self.board.tasks.values():
            tasks[rec.state.value] = tasks.get(rec.state.value, 0) + 1
        goals: dict[str, int] = {}
        for goal in self.board.goals.values():
            goals[goal.state] = goals.get(goal.state, 0) + 1
        ready, note = self.coordinator.status()
        return GroupInfo(
            group=self.board.group,
            hub_id=self.board.hub_id,
            tasks=tasks,
            goals=goals,
            agents_online=sum(1 for a in self.board.agents.values() if a.state == "online"),
            agents_total=len(self.board.agents),
            usage=self.board.group_usage(),
            coordinator_model=self.coordinator.model,
            coordinator_ready=ready,
            coordinator_note="" if ready else note,
        )

    def submit_goal(self, msg: SubmitGoal) -> GoalStatus:
        return self.board.goal_status(self.board.submit_goal(msg))

    def list_goals(self, msg: ListGoals) -> GoalList:
        goals = sorted(self.board.goals.values(), key=lambda g: g.seq)[: msg.limit]
        return GoalList(goals=[self.board.goal_status(g) for g in goals])

    def get_goal(self, msg: GetGoal) -> GoalStatus:
        return self.board.goal_status(self.board.find_goal(msg.goal_id))

    def decide_plan(self, msg: DecidePlan) -> GoalStatus:
        return self.board.goal_status(self.board.decide_plan(msg))

    def cancel_goal(self, msg: CancelGoal) -> GoalStatus:
        return self.board.goal_status(self.board.cancel_goal(msg))
