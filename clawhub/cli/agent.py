"""``clawhub agent run``: any command-line agent as a worker of the group, with no code.

::

    clawhub agent run --id coder --skill python=0.9 -- ./my-agent.sh {prompt_file}
    clawhub agent run --preset claude --id coder --skill python=0.9 --repo .
    clawhub agent run --config coder.toml

The agent itself is the SDK's ``CommandAgent`` (``agents_sdk.command``): this module reads
the flags and the config file, finds the hub (``--url``/``--nats-url``, else
``CLAWHUB_NATS_URL``, else ``hub.json``) and the agent's token (``--token``, else
``CLAWHUB_TOKEN``), and runs the agent until Ctrl-C. The SDK is imported when the command
runs, never by ``import clawhub.cli``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import HubError
from ..settings import HubSettings, read_hub_file
from .client import resolve_url
from .options import SharedOptions, fail, parse_skills, shared_options
from .views import err

if TYPE_CHECKING:
    from agents_sdk import CommandConfig

agent_app = typer.Typer(
    help="Run a command-line agent (Claude Code, Codex, Aider, Gemini CLI, any script) "
    "as a worker of the group.",
    no_args_is_help=True,
)


def agent_token(settings: HubSettings, token: str | None) -> str | None:
    """The agent's own token: ``--token``, else ``CLAWHUB_TOKEN``. Never the admin token of
    ``hub.json``: an agent acts as itself. A hub that takes tokens and none given: exit 2."""
    token = token or settings.token
    if token:
        return token
    info = read_hub_file(Path(settings.data_dir)) or {}
    if info.get("auth") is False or not info:
        return None
    raise fail(
        "this hub requires a token and the agent has none: give it one of its own, e.g.\n"
        "  CLAWHUB_TOKEN=$(clawhub token create --role agent --agent-id coder) "
        "clawhub agent run --id coder ...",
        2,
    )


def build_config(
    config: Path | None, group: str, explicit_group: bool, **flags: Any
) -> CommandConfig:
    """The agent's settings: the config file (if any), the flags given on top (exit 2 on a
    bad value). The group: ``--group``, else the file's, else ``CLAWHUB_GROUP``."""
    from agents_sdk.command import load_config, make_config  # noqa: PLC0415 - when it runs

    given = {k: v for k, v in flags.items() if v not in (None, [], {})}
    try:
        if config is not None:
            made = load_config(config)
            data = {**made.model_dump(exclude_unset=True), **given}
            if "skills" in given:
                data["skills"] = {**made.skills, **given["skills"]}
            if given.get("preset", made.preset) != made.preset and "command" not in given:
                data.pop("command", None)  # the file's command line was for its own preset
        else:
            data = given
        data["group"] = group if explicit_group or "group" not in data else data["group"]
        return make_config(data, str(config) if config else "clawhub agent run")
    except ValueError as exc:
        raise fail(str(exc), 2) from None


@agent_app.command(
    "run",
    context_settings={"allow_interspersed_args": False},
)
@shared_options("data_dir", "group")
def run(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="The command and its arguments, after `--`; {prompt}, {prompt_file}, "
            "{task_file}, {output_file} and {workdir} are filled in per task."
        ),
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="Participant id.")] = None,
    skill: Annotated[
        list[str] | None, typer.Option("--skill", "-s", help="name=level (repeatable).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="claude | codex | aider | gemini.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML or YAML file of these settings.")
    ] = None,
    model_label: Annotated[
        str | None, typer.Option("--model-label", help="The model it reports, for matching.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="laptop, cloud...")] = None,
    capacity: Annotated[int | None, typer.Option("--capacity", help="Tasks at once.")] = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the per-task folders go.")
    ] = None,
    repo: Annotated[
        Path | None, typer.Option("--repo", help="Run each task in a git worktree of it.")
    ] = None,
    keep_workdirs: Annotated[
        bool, typer.Option("--keep-workdirs", help="Leave each task's folder after its run.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", "--nats-url", help="The hub's NATS URL (default: hub.json)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="The agent's token (default: CLAWHUB_TOKEN).")
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log more.")] = False,
    *,
    shared: SharedOptions,
) -> None:
    """Join the group and run the command once per task (see docs/bring-your-own-agent.md)."""
    settings = shared.settings()
    cfg = build_config(
        config,
        shared.group or settings.group,
        shared.group is not None,
        id=id,
        preset=preset,
        command=list(command or []),
        skills=parse_skills(skill or []),
        model_label=model_label,
        device=device,
        capacity=capacity,
        workdir=str(workdir) if workdir else None,
        repo=str(repo) if repo else None,
        keep_workdirs=keep_workdirs or None,
    )
    try:
        target = resolve_url(settings, url)
    except HubError as exc:
        raise fail(str(exc)) from None
    secret = agent_token(settings, token)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from agents_sdk import CommandAgent, CommandError, SDKError  # noqa: PLC0415

    agent = CommandAgent.from_config(cfg)
    try:
        asyncio.run(agent.check())
    except CommandError as exc:
        raise fail(str(exc), 2) from None
    err.print(
        f"agent {agent.id}: runs `{' '.join(agent.argv)}` per task; Ctrl-C to stop", markup=False
    )
    try:
        agent.run(target, token=secret)
    except SDKError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``clawhub agent ...`` to the CLI."""
    app.add_typer(agent_app, name="agent")
