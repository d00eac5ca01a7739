"""docs/delegation.md as a newcomer meets it: its example agents run on a real hub, the
commands it shows run as written (with the hub's URL), and `clawhub show` prints the tree
the page prints."""

from __future__ import annotations

import ast
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from test_cli import clawhub
from test_docs import ROOT, Block, blocks

from agents_sdk import Agent
from clawhub.runtime import Hub
from clawhub.store import Store

PAGE = ROOT / "docs" / "delegation.md"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """SQLite only: the page is the subject here."""
    return sqlite_store


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No CLAWHUB_* settings from outside, a home of its own, and wide tables."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    return {**clean, "HOME": str(home), "COLUMNS": "200"}


def marked(name: str) -> Block:
    lines = PAGE.read_text().split("\n")
    for block in blocks(PAGE):
        before = [x.strip() for x in lines[: block.line - 1] if x.strip()]
        if before and before[-1] == f"<!-- {name} -->":
            return block
    raise AssertionError(f"no block marked {name} in {PAGE.name}")


async def test_the_pages_example_runs_and_shows_the_tree(
    hub: Hub, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAWHUB_AGENTS_DIR", str(tmp_path / "agents"))
    code = marked("delegation-example").code
    ns: dict[str, Any] = {"__name__": "docs_block"}
    exec(compile(code, str(PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), ns)
    editor, writer = ns["editor"], ns["writer"]
    assert isinstance(editor, Agent) and isinstance(writer, Agent)
    testing = marked("delegation-example: testing").code
    local = eval(compile(testing, str(PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), ns)
    await local  # the block's own asserts run
    assert ns["run"].ok and len(ns["run"].children) == 1
    commands = [
        shlex.split(line)
        for line in marked("delegation-example: cli").code.splitlines()
        if line.strip()
    ]
    assert [c[:2] for c in commands] == [
        [".venv/bin/clawhub", "submit"],
        [".venv/bin/clawhub", "show"],
    ]
    await editor.start(hub.url)
    await writer.start(hub.url)
    try:
        submit = await clawhub(env, *commands[0][1:], "--url", hub.url, timeout=120)
        show = await clawhub(env, *commands[1][1:], "--url", hub.url)
    finally:
        await editor.stop()
        await writer.stop()
    assert submit.code == 0, submit
    assert show.code == 0, show
    shown = PAGE.read_text().split("```text\n", 1)[1].split("```", 1)[0]
    want = shown.strip().splitlines()
    got = show.out.strip().splitlines()[: len(want)]
    assert [g.split() for g in got] == [w.split() for w in want], show.out
    report = hub.board.tasks["report"]
    assert report.output == {
        "report": ["nats: a section", "sqlite: a section", "textual: a section"]
    }
