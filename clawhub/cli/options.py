"""The options many ``clawhub`` commands share, declared once.

A command names the shared options it takes and receives them as one ``SharedOptions``::

    @shared_options(*TALKS_TO_HUB, "as_")
    def approve(task_id: str, reason: ReasonOpt = "", *, shared: SharedOptions) -> None:
        shared.request(subjects.API_DECIDE, DecideTask(..., by=shared.actor), TaskStatus)

so ``clawhub approve T1 --url nats://... --group g --as alice`` parses as it always did,
while the command's own signature holds only its own options. ``SharedOptions`` also
builds the settings once (``CLAWHUB_*`` plus these overrides) and runs a client session
against the hub those settings find.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import getpass
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from nats.aio.client import Client as NATS
from pydantic import BaseModel, ValidationError
from rich.markup import escape

from protocols import ValidationStep

from ..errors import HubError
from ..settings import HubSettings
from .client import api_subject, call, connect, resolve_token, resolve_url
from .views import console, err

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="NATS URL of the hub (default: CLAWHUB_NATS_URL or hub.json)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Hub data folder (default: ~/.clawhub).")
]
GroupOpt = Annotated[
    str | None, typer.Option("--group", help="Claw Group (default: CLAWHUB_GROUP or default).")
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who you are, for the record (default: CLAWHUB_USER or $USER)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOpt = Annotated[
    str | None, typer.Option("--store-url", help="Store URL (default: the hub's SQLite file).")
]

#: ``--reason`` of the commands that record why (each declares it itself).
ReasonOpt = Annotated[str, typer.Option(help="Why.")]

#: The name of each shared option, as a command asks for it.
Shared = Literal["url", "data_dir", "group", "as_", "as_json", "store_url"]
#: What a command that talks to a running hub takes.
TALKS_TO_HUB: tuple[Shared, ...] = ("url", "data_dir", "group")
_OPTION_TYPES: dict[str, Any] = {
    "url": UrlOpt,
    "data_dir": DataDirOpt,
    "group": GroupOpt,
    "as_": AsOpt,
    "as_json": JsonOpt,
    "store_url": StoreOpt,
}


def build_settings(**overrides: Any) -> HubSettings:
    """Build the settings once: environment (CLAWHUB_*) plus command-line overrides."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return HubSettings(**values)
    except ValidationError as exc:
        err.print(f"[red]bad setting:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def run_loop(main: Coroutine[Any, Any, T], settings: HubSettings | None = None) -> T:
    """Run a serving command's coroutine on the loop ``settings.loop`` (``CLAWHUB_LOOP``)
    chooses: uvloop when installed. A ``HubError`` (uvloop asked for and missing, a hub
    that would not start) ends in one error line."""
    from ..runtime.loop import run  # noqa: PLC0415 - the server half, only when serving

    try:
        choice = (settings or build_settings()).loop
    except typer.Exit:
        main.close()  # never started
        raise
    try:
        return run(main, choice)
    except HubError as exc:
        raise fail(str(exc)) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error on one line (never wrapped at the terminal's width: a
    command in it stays whole, to copy), taken as text, not markup; the ``typer.Exit`` to
    raise (exit ``code``)."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def whoami(name: str | None) -> str:
    """The participant id a person acts as: ``--as``, else the login name made id-safe."""
    raw = name or os.environ.get("CLAWHUB_USER") or getpass.getuser() or "human"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw).strip("-_")[:64] or "human"


@dataclass(frozen=True)
class SharedOptions:
    """The shared options of one command line (those the command did not take keep their
    defaults)."""

    url: str | None = None
    data_dir: Path | None = None
    group: str | None = None
    as_: str | None = None
    as_json: bool = False
    store_url: str | None = None

    @property
    def actor(self) -> str:
        """Who the person at the keyboard acts as (``--as``, else the login name)."""
        return whoami(self.as_)

    def settings(self, **overrides: Any) -> HubSettings:
        """The settings: environment, then ``--data-dir`` and ``--group``, then ``overrides``."""
        return build_settings(**{"data_dir": self.data_dir, "group": self.group, **overrides})

    def hub(self) -> tuple[HubSettings, str]:
        """The settings and the NATS URL of the hub to talk to (exit 1 if none is found)."""
        settings = self.settings()
        try:
            return settings, resolve_url(settings, self.url)
        except HubError as exc:
            raise fail(str(exc)) from None

    def run(self, session: Callable[[NATS, str], Awaitable[T]]) -> T:
        """Connect to the hub, run ``session(nc, group)``, close; a ``HubError`` on the way
        is printed and exits 1."""
        settings, url = self.hub()

        async def connected() -> T:
            nc = await connect(url, resolve_token(settings))
            try:
                return await session(nc, settings.group)
            finally:
                await nc.close()

        try:
            return asyncio.run(connected())
        except HubError as exc:
            raise fail(str(exc)) from None

    def request(self, verb: str, message: BaseModel, reply: type[M]) -> M:
        """One API request (``subjects.API_*``) and its reply."""

        async def session(nc: NATS, group: str) -> M:
            return await call(nc, api_subject(nc, group, verb), message, reply)

        return self.run(session)

    def show(self, reply: BaseModel, view: Callable[[], object]) -> None:
        """Print ``reply`` as JSON with ``--json``, else call ``view`` (which prints it)."""
        if self.as_json:
            console.print_json(reply.model_dump_json())
        else:
            view()


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SharedOptions)}


def shared_options(*names: Shared) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared options ``names``; it receives them as ``shared``.

    The command declares a keyword-only ``shared: SharedOptions`` parameter and its own
    options; the command typer sees takes its own options plus ``names`` (the same
    ``--url``, ``--group`` ... as if each command declared them)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        if "shared" not in own.parameters:
            raise TypeError(f"{command.__name__} takes no `shared: SharedOptions` parameter")
        kept = [p for p in own.parameters.values() if p.name != "shared"]
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_OPTION_TYPES[name],
                default=_DEFAULTS[name],
            )
            for name in names
        ]

        @functools.wraps(command)
        def with_shared(**values: Any) -> None:
            shared = SharedOptions(**{name: values.pop(name) for name in names})
            command(**values, shared=shared)

        with_shared.__signature__ = own.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        return with_shared

    return decorate


def parse_skills(values: list[str]) -> dict[str, float]:
    """``--skill name=level`` values as a skill map (exit 2 on a bad one).

    The level is required: a task's level is the lowest an agent needs, and a silent
    default would choose it for you (``name=0`` asks for the skill at any level)."""
    out: dict[str, float] = {}
    for item in values:
        name, sep, level = item.partition("=")
        if not sep or not level.strip():
            raise fail(
                f"bad --skill {item!r}: give the lowest level an agent needs, e.g. "
                f"{name.strip() or 'python'}=0.5 ({name.strip() or 'python'}=0 for any level)",
                2,
            )
        try:
            out[name.strip()] = float(level)
        except ValueError:
            raise fail(f"bad --skill {item!r}: use name=level, e.g. python=0.5", 2) from None
    return out


#: What ``--validate`` takes (``clawhub submit`` and ``clawhub goal``).
VALIDATE_HELP = (
    "Validation step, in order (repeatable): human, judge (judge:MODEL), schema, "
    "reviewer (reviewer:SKILL=LEVEL, default review)."
)


def parse_validation(values: list[str]) -> list[ValidationStep]:
    """``--validate`` values as validation steps (exit 2 on a bad one): ``human``,
    ``judge`` or ``judge:MODEL`` (a litellm model of its own), ``schema``, ``reviewer`` or
    ``reviewer:SKILL=LEVEL`` (the skill and lowest level a reviewer needs)."""
    steps: list[ValidationStep] = []
    for item in values:
        kind, _, rest = item.strip().partition(":")
        fields: dict[str, object] = {"kind": kind}
        if rest and kind == "judge":
            fields["model"] = rest
        elif rest and kind == "reviewer":
            [(skill, level)] = parse_skills([rest]).items()
            fields.update(skill=skill, level=level)
        elif rest:
            raise fail(f"bad --validate {item!r}: only judge:MODEL and reviewer:SKILL=LEVEL", 2)
        try:
            steps.append(ValidationStep.model_validate(fields))
        except ValidationError:
            raise fail(
                f"bad --validate {item!r}: use human, judge[:MODEL], schema or "
                "reviewer[:SKILL=LEVEL], e.g. reviewer:review=0.6",
                2,
            ) from None
    return steps
