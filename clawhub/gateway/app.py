"""The HTTP gateway (FastAPI, served by the hub process): REST with OpenAPI, health,
Prometheus metrics, and the WebSocket routes of ``gateway_ws``.

Every REST call carries a token (``Authorization: Bearer <token>``, or ``?token=``); the
token's group picks the hub, so a caller sees only its own group. Each API verb the hubs
serve (``Hub.routes``) becomes ``POST /v1/api/<verb>`` with the verb's typed request and
reply (``protocols.API``), through ``Hub.handle``: the same code path as NATS. Read-only
verbs also have GET routes (``/v1/tasks``, ``/v1/agents``...).
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from protocols import (
    API,
    ErrorCode,
    ErrorReply,
    GetGoal,
    GetGroup,
    GetTask,
    ListAgents,
    ListEvents,
    ListGoals,
    ListTasks,
    ProtocolError,
    TaskState,
    encode,
    subjects,
)

from ..runtime.auth import Principal, Tokens, check_api
from ..runtime.hub import Hub
from ..settings import HubSettings
from .metrics import Metrics

#: HTTP status of each refusal.
STATUS: dict[ErrorCode, int] = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.INVALID: 422,
    ErrorCode.OVERSIZE: 413,
    ErrorCode.UNKNOWN_AGENT: 404,
    ErrorCode.UNKNOWN_TASK: 404,
    ErrorCode.WRONG_SESSION: 409,
    ErrorCode.NOT_HOLDER: 409,
    ErrorCode.STALE_ATTEMPT: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorReply, "description": desc}
    for code, desc in (
        (401, "No token, or an unknown or revoked one."),
        (403, "The token's role may not do this."),
        (404, "No such task, goal or participant."),
        (409, "Conflicts with the current state."),
        (413, "Larger than max_message_bytes."),
        (422, "The request broke the schema."),
        (429, "Too many submissions: retry later."),
        (503, "The hub could not make it durable (store down): nothing applied, retry."),
    )
}

bearer = HTTPBearer(auto_error=False, description="A token from `clawhub token create`.")


@dataclass
class Gateway:
    """What the routes serve: the hubs by group, the tokens, the limits."""

    hubs: dict[str, Hub]
    tokens: Tokens
    settings: HubSettings
    metrics: dict[str, Metrics] = field(default_factory=dict)
    ws_total: int = 0
    ws_by_group: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for group, hub in self.hubs.items():
            self.metrics.setdefault(group, Metrics(hub))

    def principal(self, token: str | None) -> Principal:
        """The caller of a token; ``unauthorized`` or ``forbidden`` (group not served)."""
        who = self.tokens.verify(token)
        if who.group not in self.hubs:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"group {who.group} is not served here")
        return who

    async def call(self, who: Principal, verb: str, message: BaseModel) -> BaseModel:
        """Serve one API request for ``who``: check its role, then the hub's own path."""
        hub = self.hubs[who.group]
        try:
            check_api(who, verb, message)
        except ProtocolError as exc:
            hub.board.refused(subjects.api(who.group, verb), exc, who.agent_id)
            return ErrorReply(code=exc.code, message=exc.message)
        reply = await hub.handle(f"api.{verb}", message, who.requester)
        return await hub.settle(reply)


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    """An ``ErrorReply`` with its HTTP status."""
    body = ErrorReply(code=code, message=message).model_dump(mode="json")
    return JSONResponse(body, status_code=STATUS.get(code, 400))


def reply_response(reply: BaseModel) -> Response:
    """A hub reply as an HTTP response (errors with their status)."""
    status = STATUS.get(reply.code, 400) if isinstance(reply, ErrorReply) else 200
    return Response(encode(reply), status_code=status, media_type="application/json")


class _Refused(Exception):
    def __init__(self, error: ProtocolError) -> None:
        self.error = error


def request_token(
    request: Request,
    creds: HTTPAuthorizationCredentials | None,
    token: str | None,
) -> str | None:
    """The token of a call: the bearer header, else the ``token`` query parameter."""
    if creds is not None:
        return creds.credentials
    return token or request.query_params.get("token")


async def _caller(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[str | None, Query(description="Token (for browsers).")] = None,
) -> Principal:
    gw: Gateway = request.app.state.gateway
    try:
        return gw.principal(request_token(request, creds, token))
    except ProtocolError as exc:
        raise _Refused(exc) from None


Caller = Annotated[Principal, Depends(_caller)]


def create_app(gw: Gateway) -> FastAPI:
    """The FastAPI app of a gateway."""
    app = FastAPI(
        title="Claw Hub",
        version="1.0.0",
        description="REST gateway of a Claw Hub: the same requests and replies as the NATS "
        "API (`protocols.API`), scoped to the group of the caller's token. WebSocket: "
        "`/v1/ws/agent` (participants) and `/v1/ws/events` (event stream); see the README.",
    )
    app.state.gateway = gw

    @app.exception_handler(_Refused)
    async def refused(_request: Request, exc: _Refused) -> JSONResponse:
        return error_response(exc.error.code, exc.error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        error = ProtocolError(ErrorCode.INVALID, f"invalid request: {errors}")
        try:  # recorded in the caller's group when the token is good
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else None
            who = gw.principal(token or request.query_params.get("token"))
            gw.hubs[who.group].board.refused(request.url.path, error, who.agent_id)
        except ProtocolError:
            pass
        return error_response(error.code, error.message)

    @app.get("/healthz", tags=["ops"], summary="Liveness and readiness.")
    async def healthz() -> dict[str, Any]:
        ready = all(h.nc is not None and h.nc.is_connected for h in gw.hubs.values())
        return {"status": "ok" if ready else "degraded", "bus": ready}

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics of the token's group.",
        response_class=PlainTextResponse,
        responses={401: _ERRORS[401]},
    )
    async def metrics(who: Caller) -> PlainTextResponse:
        text = gw.metrics[who.group].render()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    served = set.intersection(*(set(h.routes) for h in gw.hubs.values())) if gw.hubs else set()
    for verb, contract in API.items():
        if f"api.{verb}" not in served:
            continue
        responses: dict[int | str, dict[str, Any]] = dict(_ERRORS)
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
    _read_routes(app, gw, served)
    from .ws import add_ws_routes  # noqa: PLC0415 - keeps this module short

    add_ws_routes(app, gw)
    return app


def _endpoint(gw: Gateway, verb: str, model: type[BaseModel]) -> Callable[..., Awaitable[Response]]:
    async def endpoint(body: BaseModel, who: Principal) -> Response:
        return reply_response(await gw.call(who, verb, body))

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
            inspect.Parameter(
                "who",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Principal,
                default=Depends(_caller),
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
                responses: dict[int | str, dict[str, Any]] = dict(_ERRORS)
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
    async def task(who: Caller, task_id: str) -> Response:
        return await ask(who, subjects.API_TASK, lambda: GetTask(task_id=task_id))

    @get("/v1/agents", subjects.API_AGENTS, "List the participants.")
    async def agents(who: Caller, include_gone: bool = False) -> Response:
        return await ask(who, subjects.API_AGENTS, lambda: ListAgents(include_gone=include_gone))

    @get("/v1/events", subjects.API_EVENTS, "Read the stored event log.")
    async def events(
        who: Caller,
        task_id: str | None = None,
        kind: Annotated[str | None, Query(max_length=100)] = None,
        after: Annotated[int, Query(ge=0)] = 0,
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
    async def goal(who: Caller, goal_id: str) -> Response:
        return await ask(who, subjects.API_GOAL, lambda: GetGoal(goal_id=goal_id))


def openapi_document() -> str:
    """The canonical text of the OpenAPI document (committed as ``clawhub/openapi.json``):
    the app of a hub that is built but not started, on an in-memory store."""
    from ..store.store import Store  # noqa: PLC0415

    store = Store("sqlite://")
    try:
        hub = Hub(HubSettings(group="default"), store=store)
        app = create_app(Gateway({hub.group: hub}, Tokens(store), hub.settings))
        spec = app.openapi()
    finally:
        store.close()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
