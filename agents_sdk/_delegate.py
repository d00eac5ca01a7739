"""Delegation from inside a handler: child task specs, the ``Delegate`` request (retried
until the hub answers), and the wait on the children's outcomes.

The context (``TaskContext.delegate``) reaches the hub only through ``HubCalls``: the real
agent's ``Jobs`` sends NATS/WebSocket requests, ``agents_sdk.testing`` answers in process.
The wait reads each open child's status (``api.task``) every ``POLL`` seconds and reports
their progress on the parent (a progress line whenever the summary changes). The hub does
not judge the parent stalled while a child is open and lends its slot meanwhile, so a child
may run on the parent's own agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from pydantic import JsonValue

from protocols import AgentInfo, Child, Delegated, ErrorCode, TaskSpec, TaskState, TaskStatus

from .errors import DelegationFailed, HubUnavailable, RequestRefused, RequestTimeout

log = logging.getLogger("agents_sdk")

#: Seconds between two reads of the open children's status.
POLL = 0.5
#: First and largest delay between retries of a ``Delegate`` the hub did not answer.
RETRY_START = 0.2
RETRY_MAX = 5.0

Report = Callable[[str], Awaitable[None]]


class HubCalls(Protocol):
    """What a task context asks the hub for when it delegates."""

    async def delegate(self, task_id: str, attempt: int, children: list[Child]) -> Delegated:
        """Send ``Delegate`` for this attempt; the reply names the children."""

    async def task(self, task_id: str) -> TaskStatus:
        """One task's status."""

    async def agents(self) -> list[AgentInfo]:
        """The group's online participants."""


async def request_children(
    hub: HubCalls, task_id: str, attempt: int, children: list[Child]
) -> Delegated:
    """``Delegate``, sent again (same keys: the same children) until the hub answers.
    A refusal (a stale attempt, a bad spec) raises ``RequestRefused`` at once."""
    delay = RETRY_START
    while True:
        try:
            return await hub.delegate(task_id, attempt, children)
        except RequestRefused as exc:
            if exc.code != ErrorCode.UNAVAILABLE:
                raise
            why: Exception = exc
        except (HubUnavailable, RequestTimeout) as exc:
            why = exc
        log.info("delegate of %s#%d not answered (%s); retrying", task_id, attempt, why)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


def summary(statuses: dict[str, TaskStatus]) -> str:
    """``"delegated 3: 1 done, 1 running (c2 bob 40%), 1 ready"``."""
    counts: dict[str, int] = {}
    running: list[str] = []
    for child_id, st in statuses.items():
        counts[st.state.value] = counts.get(st.state.value, 0) + 1
        if st.state is TaskState.RUNNING:
            pct = "" if st.progress is None else f" {st.progress:.0%}"
            running.append(f"{child_id} {st.assigned_to or '?'}{pct}")
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    line = f"delegated {len(statuses)}: {', '.join(parts)}"
    return line + (f" ({'; '.join(running)})" if running else "")


def outcome(status: TaskStatus) -> JsonValue | DelegationFailed:
    """The output of a finished child, or the error that says why it did not finish."""
    if status.state is TaskState.DONE:
        return status.output
    return DelegationFailed(status.id, status.state.value, status.error or "")


async def wait_children(
    hub: HubCalls,
    ids: Sequence[str],
    report: Report,
    *,
    return_exceptions: bool,
    timeout: float | None = None,
) -> list[JsonValue | DelegationFailed]:
    """Wait until every child is finished; their outputs in order. A child that failed or
    was cancelled raises ``DelegationFailed`` at once (others keep running: the hub keeps
    them for the parent's next attempt), or is returned in its place
    (``return_exceptions``). ``timeout``: ``TimeoutError`` after that many seconds."""
    loop = asyncio.get_running_loop()
    ends = None if timeout is None else loop.time() + timeout
    seen: dict[str, TaskStatus] = {}
    said = ""
    while True:
        for child_id in dict.fromkeys(ids):
            last = seen.get(child_id)
            if last is not None and last.state.terminal:
                continue
            try:
                seen[child_id] = status = await hub.task(child_id)
            except (HubUnavailable, RequestTimeout) as exc:
                log.info("status of child %s not read (%s); trying again", child_id, exc)
                continue
            if status.state.terminal and status.state is not TaskState.DONE:
                failed = outcome(status)
                if not return_exceptions and isinstance(failed, DelegationFailed):
                    raise failed
        if all(c in seen and seen[c].state.terminal for c in ids):
            return [outcome(seen[c]) for c in ids]
        line = summary({c: seen[c] for c in dict.fromkeys(ids) if c in seen})
        if line != said:
            said = line
            await report(line)
        if ends is not None and loop.time() >= ends:
            open_ids = [c for c in ids if c not in seen or not seen[c].state.terminal]
            raise TimeoutError(f"delegated tasks {', '.join(open_ids)} not finished in time")
        await asyncio.sleep(POLL)


def live_skills(agents: Sequence[AgentInfo]) -> dict[str, float]:
    """Every skill of the online participants that take work, with its highest level."""
    skills: dict[str, float] = {}
    for agent in agents:
        if agent.state != "online" or agent.mode != "active":
            continue
        for name, level in agent.profile.skills.items():
            skills[name] = max(level, skills.get(name, 0.0))
    return dict(sorted(skills.items()))


def child_spec(spec: TaskSpec | str, **fields: object) -> TaskSpec:
    """A child's spec: a ``TaskSpec``, or a title and ``TaskSpec`` fields (``skills``,
    ``input``, ``validation``...; ``None`` values are left at their defaults)."""
    if isinstance(spec, TaskSpec):
        return spec
    given = {k: v for k, v in fields.items() if v is not None}
    return TaskSpec.model_validate({"title": spec, **given})
