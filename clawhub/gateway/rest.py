"""The REST routes of the gateway: health and metrics, ``POST /v1/api/<verb>`` for each API
verb the hubs serve (``Hub.routes``) with the verb's typed request and reply
(``protocols.API``), and GET routes for the read-only verbs (``/v1/tasks``,
``/v1/agents``...). Every call goes through ``Gateway.call``: the same code path as NATS."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from protocols import (
    API,
    ID_PATTERN,
    MAX_INT,
    ErrorCode,
    GetGoal,
    GetGroup,
    GetTask,
    ListAgents,
    ListEvents,
    ListGoals,
    ListTasks,
    ProtocolError,
    TaskState,
    subjects,
)

from ..errors import CallerRefused
from ..runtime.auth import Principal
from .caller import Caller, caller
from .replies import ERROR_RESPONSES, READ_ERRORS, error_response, error_responses, reply_response
from .state import Gateway

#: A task or goal id in a path: the identifier pattern of every id.
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="An identifier.")]


def add_rest_routes(app: FastAPI, gw: Gateway) -> None:
    """Add the ops routes, the API routes and the read routes."""
    _ops_routes(app, gw)
    served = set.intersection(*(set(h.routes) for h in gw.hubs.values())) if gw.hubs else set()
    if gw.served:  # a replica: every verb, whichever replica serves it
        served = {f"api.{verb}" for verb in API}
    _api_routes(app, gw, served)
    _read_routes(app, gw, served)


def _ops_routes(app: FastAPI, gw: Gateway) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness and readiness.")
    async def healthz() -> dict[str, Any]:
        ready = all(h.nc is not None and h.nc.is_connected for h in gw.hubs.values())
        return {"status": "ok" if ready else "degraded", "bus": ready}

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics of the token's group.",
        response_class=PlainTextResponse,
        responses=error_responses(401, 403, 422, 500, 503),
    )
    async def metrics(who: Caller) -> PlainTextResponse:
        try:
            text = gw.metrics_of(who.group).render()
        except ProtocolError as exc:
            raise CallerRefused(exc) from None
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def _api_routes(app: FastAPI, gw: Gateway, served: set[str]) -> None:
    """``POST /v1/api/<verb>`` for each verb every hub serves."""
    for verb, contract in API.items():
        if f"api.{verb}" not in served:
            continue
        responses: dict[int | str, dict[str, Any]] = dict(ERROR_RESPONSES)
        if contract.reply is not None:
            responses[200] = {"model": contract.reply, "description": "The hub's reply."}
        app.add_api_route(
            f"/v1/api/{verb}",
            _endpoint(gw, verb, contract.request),
            methods=["POST"],
            tags=["api"],
            summary=contract.summary,
            operation_id=f"api_{verb}",
            responses=responses,
            response_class=Response,
        )


def _endpoint(gw: Gateway, verb: str, model: type[BaseModel]) -> Callable[..., Awaitable[Response]]:
    """The endpoint of one verb: its body is the verb's request model (set in the signature,
    where FastAPI reads it)."""

    async def endpoint(body: BaseModel, who: Principal) -> Response:
        return reply_response(await gw.call(who, verb, body))

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
            inspect.Parameter(
                "who",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Principal,
                default=Depends(caller),
            ),
        ]
    )
    endpoint.__name__ = f"api_{verb}"
    return endpoint


def _read_routes(app: FastAPI, gw: Gateway, served: set[str]) -> None:
    """GET routes for the read-only verbs (the same requests as ``POST /v1/api/<verb>``)."""

    def get(path: str, verb: str, summary: str) -> Callable[[Any], Any]:
        contract = API[verb]

        def register(fn: Any) -> Any:
            if f"api.{verb}" in served:
                responses: dict[int | str, dict[str, Any]] = dict(READ_ERRORS)
                responses[200] = {"model": contract.reply, "description": "The hub's reply."}
                app.add_api_route(
                    path,
                    fn,
                    methods=["GET"],
                    tags=["read"],
                    summary=summary,
                    responses=responses,
                    response_class=Response,
                )
            return fn

        return register

    async def ask(who: Principal, verb: str, build: Callable[[], BaseModel]) -> Response:
        try:
            message = build()
        except ValueError as exc:
            return error_response(ErrorCode.INVALID, str(exc))
        return reply_response(await gw.call(who, verb, message))

    @get("/v1/tasks", subjects.API_TASKS, "List tasks, oldest first.")
    async def tasks(
        who: Caller,
        state: Annotated[list[TaskState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> Response:
        return await ask(
            who, subjects.API_TASKS, lambda: ListTasks(states=state or [], limit=limit)
        )

    @get("/v1/tasks/{task_id}", subjects.API_TASK, "One task's status.")
    async def task(who: Caller, task_id: PathId) -> Response:
        return await ask(who, subjects.API_TASK, lambda: GetTask(task_id=task_id))

    @get("/v1/agents", subjects.API_AGENTS, "List the participants.")
    async def agents(who: Caller, include_gone: bool = False) -> Response:
        return await ask(who, subjects.API_AGENTS, lambda: ListAgents(include_gone=include_gone))

    @get("/v1/events", subjects.API_EVENTS, "Read the stored event log.")
    async def events(
        who: Caller,
        task_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        kind: Annotated[str | None, Query(max_length=100)] = None,
        after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        return await ask(
            who,
            subjects.API_EVENTS,
            lambda: ListEvents(task_id=task_id, kind=kind, after=after, limit=limit),
        )

    @get("/v1/group", subjects.API_GROUP, "The group at a glance.")
    async def group(who: Caller) -> Response:
        return await ask(who, subjects.API_GROUP, GetGroup)

    @get("/v1/goals", subjects.API_GOALS, "List goals, oldest first.")
    async def goals(who: Caller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Response:
        return await ask(who, subjects.API_GOALS, lambda: ListGoals(limit=limit))

    @get("/v1/goals/{goal_id}", subjects.API_GOAL, "One goal's status.")
    async def goal(who: Caller, goal_id: PathId) -> Response:
        return await ask(who, subjects.API_GOAL, lambda: GetGoal(goal_id=goal_id))
