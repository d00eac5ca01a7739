"""The CLI's shared options: declared once, and still typed after each command as before."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from clawhub.cli import app
from clawhub.cli.options import TALKS_TO_HUB, SharedOptions, shared_options

HUB = {"--url", "--data-dir", "--group"}
#: The shared options of each command, as the command line has always taken them.
EXPECTED: dict[str, set[str]] = {
    **{
        name: HUB | {"--as"}
        for name in (
            "approve",
            "reject",
            "reassign",
            "pause",
            "resume",
            "drain",
            "chat",
            "cancel",
            "approve-plan",
            "reject-plan",
            "cancel-goal",
        )
    },
    **{name: HUB | {"--json"} for name in ("show", "group", "goals", "agents", "tasks", "events")},
    "goal": HUB,
    "submit": HUB,
    "tui": HUB,
    "up": {"--data-dir", "--group", "--store-url"},  # its own --group (a list), --store-url
    "token create": {"--data-dir", "--group", "--store-url"},
    "token list": {"--data-dir", "--group", "--store-url", "--json"},
    "token revoke": {"--data-dir", "--store-url"},
}
SHARED = {"--url", "--data-dir", "--group", "--as", "--json", "--store-url"}


def commands() -> dict[str, Any]:
    """Every command of ``clawhub`` by its name on the command line (``token create``)."""
    root: Any = typer.main.get_command(app)
    out: dict[str, Any] = {}
    for name, command in root.commands.items():
        if hasattr(command, "commands"):  # a group of commands
            out |= {f"{name} {sub}": c for sub, c in command.commands.items()}
        else:
            out[name] = command
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_command_takes_its_shared_options(name: str) -> None:
    options = {o for p in commands()[name].params for o in p.opts if o.startswith("--")}
    assert options & SHARED == EXPECTED[name]


def test_commands_without_shared_options() -> None:
    plain = {n for n, c in commands().items() if not {o for p in c.params for o in p.opts} & SHARED}
    assert plain == {"demo", "schema"}


def test_shared_options_reach_the_command_as_one_object() -> None:
    seen: list[tuple[str, SharedOptions]] = []
    tiny = typer.Typer()

    @tiny.command()
    @shared_options(*TALKS_TO_HUB, "as_")
    def hello(
        name: str,
        loud: Annotated[bool, typer.Option("--loud")] = False,
        *,
        shared: SharedOptions,
    ) -> None:
        """Say hello."""
        seen.append((name + ("!" if loud else ""), shared))

    args = ["bob", "--group", "g1", "--url", "nats://x:1", "--loud", "--as", "ann"]
    result = CliRunner().invoke(tiny, args)
    assert result.exit_code == 0, result.output
    assert seen == [
        ("bob!", SharedOptions(url="nats://x:1", group="g1", as_="ann")),
    ]
    assert seen[0][1].actor == "ann"
    assert seen[0][1].data_dir is None and not seen[0][1].as_json


def test_a_command_must_take_shared() -> None:
    def no_shared(path: Path) -> None:
        """Nothing shared here."""

    with pytest.raises(TypeError, match="shared"):
        shared_options("url")(no_shared)
