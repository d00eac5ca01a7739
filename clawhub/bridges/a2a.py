"""The A2A bridge, inward: a remote A2A agent joins the group as a worker.

``A2ABridge(card_url, ...)`` reads the remote agent's card, registers one participant for
it (an ``agents_sdk.Agent`` with its own id and credential) and runs each assignment
through the a2a-sdk client. It translates; the hub decides (stalls, loss, fencing,
reassignment, validation are the hub's own, as for every participant)::

    bridge = A2ABridge("http://127.0.0.1:9999", hub_url="nats://...", token="tk-...")
    await bridge.start()        # A2ABridgeError: no card, not a card; SDKError: the hub
    ...
    await bridge.stop()

==========================================  ==============================================
A2A                                         Claw Hub
==========================================  ==============================================
assignment                                  ``SendStreamingMessage`` (card streams), else
                                            ``SendMessage`` then ``GetTask`` polling
``Task`` / ``TaskStatusUpdateEvent``        ``ctx.progress("a2a <state>: <message>")``
``TaskArtifactUpdateEvent``                 ``ctx.progress("a2a artifact <name>")``
``TASK_STATE_COMPLETED`` (or a ``Message``)  the result (``a2a_mapping.result_output``)
``FAILED`` / ``REJECTED`` / ``CANCELED``    an error result (the hub retries or fails)
``AUTH_REQUIRED``                           an error result (not supported)
``INPUT_REQUIRED``                          the question in the group chat (about the
                                            task); the first reply to it is the next
                                            ``Message`` of the same remote task
our attempt revoked or cancelled            ``CancelTask``; a COMPLETED task in its reply
                                            is sent as a late result, which the hub's
                                            fencing refuses (``stale_attempt``)
card stops answering (``lost_after`` polls)  ``Agent.lose``: the hub marks it lost and
                                            reassigns; it registers again when back
no status update for the stall timeout      nothing: the hub stalls the attempt
==========================================  ==============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.client.errors import AgentCardResolutionError
from a2a.types.a2a_pb2 import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
)
from pydantic import JsonValue

from agents_sdk import Agent, HubClient, SDKError, TaskContext

from .a2a_mapping import (
    BINDINGS,
    TERMINAL,
    A2ABridgeError,
    RemoteTaskError,
    assignment_message,
    card_labels,
    card_problem,
    card_skills,
    card_target,
    merge_artifact,
    message_text,
    reply_message,
    result_output,
    slug,
    state_name,
    status_line,
)
from .a2a_questions import Questions

log = logging.getLogger("clawhub.bridges.a2a")

S = TaskState

#: Remote states that wait for someone (the bridge turns them into a question or an error).
INTERRUPTED = frozenset({S.TASK_STATE_INPUT_REQUIRED, S.TASK_STATE_AUTH_REQUIRED})


async def fetch_card(http: httpx.AsyncClient, url: str) -> AgentCard:
    """The card at ``url`` (the agent's base URL or the card's own URL), checked for what
    the bridge needs; ``A2ABridgeError`` with the reason otherwise."""
    base, path = card_target(url)
    where = base if path == "/" else base + path
    try:
        card = await A2ACardResolver(http, base, path).get_agent_card()
    except AgentCardResolutionError as exc:
        raise A2ABridgeError(f"no A2A agent card at {where}: {exc}") from None
    problem = card_problem(card)
    if problem is not None:
        raise A2ABridgeError(f"{where} is not a usable A2A agent card: {problem}")
    return card


@dataclass
class _Run:
    """One attempt as the remote agent sees it: its task, state and artifacts so far."""

    task_id: str | None = None
    context_id: str | None = None
    state: int = S.TASK_STATE_UNSPECIFIED
    status: str = ""
    question: str = ""
    answer: Message | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """True when the remote will not move on by itself (done, or waiting for input)."""
        return self.state in TERMINAL or self.state in INTERRUPTED


class A2ABridge:
    """One remote A2A agent as a participant of a Claw Group.

    ``card_url``: the agent's base URL or its card's URL. ``hub_url``/``token``/``group``:
    where the participant joins and with which credential (an agent token for ``agent_id``,
    default: ``CLAWHUB_TOKEN``, or for the local hub of ``hub.json`` no token at all).
    ``agent_id`` defaults to the slug of the card's name; ``name`` to the card's name;
    ``skills`` overrides or adds levels to the card's skills (each at ``default_level``).
    ``poll_interval``: how often the card is read (liveness) and, for an agent that does
    not stream, its task; ``lost_after``: failed reads in a row before the participant is
    given up (``Agent.lose``). ``cancel_timeout`` bounds a ``CancelTask``; a question
    (INPUT_REQUIRED) waits ``input_timeout`` for an answer in the chat. ``token_for``, when
    no ``token`` is given: called with the participant id once the card is read, it returns
    the credential (``clawhub up`` makes an agent token for that id so).
    """

    def __init__(
        self,
        card_url: str,
        *,
        hub_url: str | None = None,
        token: str | None = None,
        group: str = "default",
        agent_id: str | None = None,
        name: str | None = None,
        skills: dict[str, float] | None = None,
        default_level: float = 0.5,
        model: str | None = None,
        capacity: int = 1,
        poll_interval: float = 5.0,
        probe_timeout: float = 10.0,
        lost_after: int = 2,
        cancel_timeout: float = 30.0,
        input_timeout: float = 3600.0,
        start_timeout: float = 10.0,
        token_for: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        if not 0.0 <= default_level <= 1.0:
            raise ValueError(f"default level must be within 0..1, got {default_level}")
        self.card_url = card_url
        self.hub_url = hub_url
        self.token = token
        self.group = group
        self.poll_interval = poll_interval
        self.probe_timeout = probe_timeout
        self.lost_after = max(1, lost_after)
        self.cancel_timeout = cancel_timeout
        self.input_timeout = input_timeout
        self.start_timeout = start_timeout
        self._token_for = token_for
        self._wanted: dict[str, Any] = {
            "agent_id": agent_id,
            "name": name,
            "skills": dict(skills or {}),
            "default_level": default_level,
            "model": model,
            "capacity": capacity,
        }
        self.card: AgentCard | None = None
        self.agent: Agent | None = None
        self.online = False
        """True while the participant is registered (false after the remote was lost)."""
        self._client: Client | None = None
        self._http: httpx.AsyncClient | None = None
        self._probe_http: httpx.AsyncClient | None = None
        self._questions: Questions | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._leaving = False

    @property
    def agent_id(self) -> str:
        """The participant's id (known once started)."""
        if self.agent is None:
            raise RuntimeError("the bridge is not started")
        return self.agent.id

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the card, register the participant, start watching the remote.

        Raises ``A2ABridgeError`` when the URL has no usable card, and the SDK's errors
        (``HubUnavailable``, ``RequestRefused``: e.g. a token for another id) from the hub.
        """
        self._probe_http = httpx.AsyncClient(timeout=self.probe_timeout)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.probe_timeout, read=None))
        try:
            self.card = card = await fetch_card(self._probe_http, self.card_url)
            streaming = card.capabilities.streaming
            config = ClientConfig(
                streaming=streaming,
                polling=not streaming,
                httpx_client=self._http,
                supported_protocol_bindings=list(BINDINGS),
            )
            self._client = ClientFactory(config).create(card)
            self.agent = self._make_agent(card)
            if self.token is None and self._token_for is not None:
                self.token = await self._token_for(self.agent.id)
            await self.agent.start(self.hub_url, token=self.token, timeout=self.start_timeout)
            self.online = True
            hub = HubClient(self.hub_url, self.group, token=self.token)
            self._questions = Questions(hub, self.agent.id, self.input_timeout)
            await self._questions.start()
            self._tasks = [
                asyncio.create_task(self._watch(), name=f"a2a-watch-{self.agent.id}"),
            ]
        except BaseException:
            await self.stop()
            raise
        log.info("A2A agent %r at %s registered as %s", card.name, self.card_url, self.agent.id)

    async def stop(self) -> None:
        """Leave the group (running attempts are cancelled: the hub reassigns them) and
        close every connection."""
        self._leaving = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.agent is not None and self.online:
            await self.agent.stop(reason="A2A bridge stopped")
        self.online = False
        if self._questions is not None:
            await self._questions.stop()
        for closing in (self._client, self._http, self._probe_http):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await (closing.close() if isinstance(closing, Client) else closing.aclose())
        self._client = self._http = self._probe_http = self._questions = None

    def _make_agent(self, card: AgentCard) -> Agent:
        w = self._wanted
        agent_id = w["agent_id"] or slug(card.name) or "a2a-agent"
        agent = Agent(
            (w["name"] or card.name)[:200],
            id=agent_id,
            group=self.group,
            skills=card_skills(card, w["skills"], w["default_level"]),
            model=w["model"],
            capacity=w["capacity"],
            labels=card_labels(card),
            tools=["a2a"],
            device="cloud",
        )
        agent.handler(self._work)
        return agent

    # -- liveness ---------------------------------------------------------------------------

    async def probe(self) -> str | None:
        """Read the card once: ``None`` when the remote answers with a usable card, else why
        not."""
        assert self._probe_http is not None
        try:
            await fetch_card(self._probe_http, self.card_url)
        except A2ABridgeError as exc:
            return str(exc)
        except Exception as exc:  # anything the remote sends back is its problem, not ours
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _watch(self) -> None:
        """Poll the card; give the participant up after ``lost_after`` failures in a row,
        register it again when the remote answers again."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                failures = await self._check(failures)
            except Exception:  # the watcher must outlive any one bad round
                log.exception("A2A agent %s: liveness check failed", self.card_url)

    async def _check(self, failures: int) -> int:
        """One read of the card; the count of failed reads in a row after it."""
        problem = await self.probe()
        if problem is None:
            if not self.online:
                await self._rejoin()
            return 0
        failures += 1
        log.info("A2A agent %s: card read %d failed: %s", self.card_url, failures, problem)
        if self.online and failures >= self.lost_after:
            await self._lose(problem)
        return failures

    async def _lose(self, problem: str) -> None:
        assert self.agent is not None
        self._leaving, self.online = True, False
        try:
            await self.agent.lose(f"the A2A agent at {self.card_url} stopped answering: {problem}")
        finally:
            self._leaving = False
            self.online = False

    async def _rejoin(self) -> None:
        assert self.agent is not None
        try:
            await self.agent.start(self.hub_url, token=self.token, timeout=self.start_timeout)
        except SDKError as exc:
            log.warning("A2A agent %s is back, but registering failed: %s", self.card_url, exc)
            return
        self.online = True
        log.info("A2A agent %s answers again: %s registered again", self.card_url, self.agent.id)

    async def _suspect(self, why: str) -> None:
        """A call to the remote failed: wake the watcher and wait until the card answers
        again (if it does not, the watcher gives the participant up, which cancels us)."""
        log.info("A2A agent %s: %s", self.card_url, why)
        self._wake.set()
        while True:
            await asyncio.sleep(self.poll_interval)
            if await self.probe() is None:
                return

    # -- the work ---------------------------------------------------------------------------

    async def _work(self, ctx: TaskContext) -> JsonValue:
        """The handler of every assignment."""
        run = _Run()
        try:
            return await self._drive(ctx, run)
        except asyncio.CancelledError:
            if run.task_id is None or run.state in TERMINAL:
                raise
            if self._leaving:  # the hub reassigns the work; tell the remote, briefly
                if self.online:
                    with contextlib.suppress(Exception):
                        await self._cancel_remote(ctx, run, timeout=2.0)
                raise
            late = await self._after_revoke(ctx, run)
            if late is None:
                raise
            return late

    async def _after_revoke(self, ctx: TaskContext, run: _Run) -> JsonValue | None:
        """Our attempt was revoked or cancelled: ``CancelTask`` on the remote (the hub may
        repeat its cancel meanwhile; only the bridge leaving stops this). A late answer is
        returned, to be sent with the revoked attempt's number."""
        current = asyncio.current_task()
        assert current is not None
        cancelling = asyncio.ensure_future(self._cancel_remote(ctx, run))
        while True:
            try:
                late = await asyncio.shield(cancelling)
                break
            except asyncio.CancelledError:
                if self._leaving:
                    cancelling.cancel()
                    raise
        if late is not None:
            while current.cancelling():
                current.uncancel()  # the remote answered anyway: the hub's fencing judges it
        return late

    async def _drive(self, ctx: TaskContext, run: _Run) -> JsonValue:
        request = SendMessageRequest(message=assignment_message(ctx.assignment))
        while True:
            await self._follow(ctx, run, request)
            if run.state == S.TASK_STATE_COMPLETED:
                await ctx.progress(1.0, run.status or "a2a completed")
                return result_output(run.artifacts.values(), run.answer)
            if run.state == S.TASK_STATE_INPUT_REQUIRED:
                assert run.task_id is not None and run.context_id is not None
                assert self._questions is not None
                question = run.question or "the A2A agent needs more input"
                sender, text = await self._questions.ask(ctx, question)
                request = SendMessageRequest(
                    message=reply_message(text, sender, run.task_id, run.context_id)
                )
                run.state = S.TASK_STATE_WORKING
                continue
            if run.state == S.TASK_STATE_AUTH_REQUIRED:
                raise RemoteTaskError(
                    f"the A2A agent asks for authentication ({run.status}); "
                    "auth-required is not supported by the bridge"
                )
            raise RemoteTaskError(
                f"the A2A agent's task ended {state_name(run.state)}: "
                f"{run.status or 'no reason given'}"
            )

    async def _follow(self, ctx: TaskContext, run: _Run, request: SendMessageRequest) -> None:
        """Send ``request`` and follow the remote task until it is settled."""
        assert self._client is not None
        try:
            async for event in self._client.send_message(request):
                await self._take(ctx, run, event)
                if run.settled:
                    return
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if run.task_id is None:
                await self._suspect(f"sending the task failed ({problem})")
                raise RemoteTaskError(f"the A2A agent did not take the task: {problem}") from None
            await self._suspect(f"the task's stream broke ({problem})")
        await self._poll(ctx, run)

    async def _poll(self, ctx: TaskContext, run: _Run) -> None:
        """Read the remote task every ``poll_interval`` until it is settled."""
        assert self._client is not None and run.task_id is not None
        failures = 0
        while not run.settled:
            await asyncio.sleep(self.poll_interval)
            try:
                task = await self._client.get_task(GetTaskRequest(id=run.task_id))
            except Exception as exc:
                failures += 1
                problem = f"{type(exc).__name__}: {exc}"
                if failures >= 3:
                    raise RemoteTaskError(
                        f"cannot read task {run.task_id} from the A2A agent: {problem}"
                    ) from None
                await self._suspect(f"reading task {run.task_id} failed ({problem})")
                continue
            failures = 0
            await self._take_task(ctx, run, task)

    async def _take(self, ctx: TaskContext, run: _Run, event: StreamResponse) -> None:
        kind = event.WhichOneof("payload")
        if kind == "task":
            await self._take_task(ctx, run, event.task)
        elif kind == "message":  # a direct answer, no task: done
            run.answer = event.message
            run.state = S.TASK_STATE_COMPLETED
        elif kind == "status_update":
            await self._take_status(ctx, run, event.status_update.status)
        elif kind == "artifact_update":
            update = event.artifact_update
            merge_artifact(run.artifacts, update.artifact, update.append)
            await ctx.progress(message=f"a2a artifact {update.artifact.name or '(unnamed)'}")

    async def _take_task(self, ctx: TaskContext, run: _Run, task: Task) -> None:
        run.task_id, run.context_id = task.id, task.context_id
        changed = len(task.artifacts) != len(run.artifacts)
        if changed:
            run.artifacts = {}
            for artifact in task.artifacts:
                merge_artifact(run.artifacts, artifact, append=False)
        await self._take_status(ctx, run, task.status, force=changed)

    async def _take_status(
        self, ctx: TaskContext, run: _Run, status: TaskStatus, force: bool = False
    ) -> None:
        line = status_line(status)
        if line == run.status and status.state == run.state and not force:
            return  # the same status polled again is no progress
        run.state, run.status = status.state, line
        if status.state == S.TASK_STATE_INPUT_REQUIRED and status.HasField("message"):
            run.question = message_text(status.message)
        if status.state not in TERMINAL:
            await ctx.progress(message=line)

    async def _cancel_remote(
        self, ctx: TaskContext, run: _Run, timeout: float | None = None
    ) -> JsonValue | None:
        """``CancelTask`` for a revoked or cancelled attempt; the output if the remote had
        completed the task anyway (a late answer), else ``None``."""
        assert self._client is not None and run.task_id is not None
        try:
            task = await asyncio.wait_for(
                self._client.cancel_task(CancelTaskRequest(id=run.task_id)),
                self.cancel_timeout if timeout is None else timeout,
            )
        except Exception as exc:
            log.info(
                "CancelTask %s on %s: %s: %s", run.task_id, self.card_url, type(exc).__name__, exc
            )
            return None
        if task.status.state != S.TASK_STATE_COMPLETED:
            return None
        log.warning(
            "A2A agent %s completed task %s after our attempt %s#%d was revoked: sending its "
            "late answer (the hub's fencing decides)",
            self.card_url,
            run.task_id,
            ctx.task_id,
            ctx.attempt,
        )
        return result_output(task.artifacts)
