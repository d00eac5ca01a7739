"""The README's and the docs' reference tables are true: every setting the hub has is in
docs/configuration.md, every ``CLAWHUB_*`` variable the tables name exists (with the default
the table says), and every ``clawhub`` command the CLI tables name is a real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from clawhub.cli.app import app
from clawhub.settings import HubSettings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIG = ROOT / "docs" / "configuration.md"
CLI_DOC = ROOT / "docs" / "cli.md"
#: Read by the SDK, not the hub's settings.
SDK_SIDE = {"CLAWHUB_AGENTS_DIR"}
VARIABLE = re.compile(r"`(CLAWHUB_[A-Z0-9_]+)`")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row (header and rule rows included)."""
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def settings_env() -> dict[str, object]:
    return {"CLAWHUB_" + n.upper(): f.default for n, f in HubSettings.model_fields.items()}


def test_every_setting_has_its_row_in_the_configuration_page() -> None:
    documented = {v for row in table_rows(CONFIG.read_text()) for v in VARIABLE.findall(row[0])}
    missing = sorted(set(settings_env()) - documented)
    assert not missing, f"settings with no row in docs/configuration.md: {missing}"


@pytest.mark.parametrize("page", [README, CONFIG], ids=lambda p: p.name)
def test_every_variable_in_a_table_exists_with_the_default_it_states(page: Path) -> None:
    env = settings_env()
    rows = [r for r in table_rows(page.read_text()) if VARIABLE.search(r[0]) and len(r) >= 3]
    assert rows, f"no configuration table in {page.name}"
    for row in rows:
        names = VARIABLE.findall(row[0])
        unknown = [n for n in names if n not in env and n not in SDK_SIDE]
        assert not unknown, f"{page.name}: no such setting {unknown}"
        stated = re.findall(r"`([^`]*)`", row[1])
        if len(stated) != len(names):
            continue  # a default in words ("unset", "embedded nats-server")
        for name, text in zip(names, stated, strict=True):
            default = env.get(name)
            if isinstance(default, bool):
                assert text == str(default).lower(), f"{page.name}: {name} default {text}"
            elif isinstance(default, int | float | str):
                assert text == str(default), f"{page.name}: {name} default {text} != {default}"


def command_paths(group: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command and sub-command of a (typer) click group, as word tuples."""
    paths = set()
    commands: dict[str, object] = getattr(group, "commands", {})
    for name, cmd in commands.items():
        paths.add((*prefix, name))
        paths |= command_paths(cmd, (*prefix, name))
    return paths


@pytest.mark.parametrize("page", [README, CLI_DOC], ids=lambda p: p.name)
def test_every_command_in_a_cli_table_is_a_real_command(page: Path) -> None:
    known = command_paths(typer.main.get_command(app))
    assert ("token", "create") in known
    named = [
        m.group(1).split()
        for row in table_rows(page.read_text())
        for m in re.finditer(r"`clawhub ([a-z][a-z0-9 -]*)", row[0])
    ]
    assert named, f"no CLI table in {page.name}"
    for given in named:
        words = [w for w in given if not w.startswith("-")]
        # a known command the words start with (``token create``, ``up``)
        found = [p for p in known if tuple(words[: len(p)]) == p]
        assert found, f"{page.name}: `clawhub {' '.join(words)}` is not a command"
