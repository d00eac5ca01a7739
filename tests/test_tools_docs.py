"""docs/tools.md as a newcomer meets it: its blocks marked ``<!-- tools-test: NAME -->`` run
as written (top-level ``await``, ``tmp_path`` given, from the repository's folder), with
litellm's OpenAI provider pointed at the scripted chat server (``OPENAI_API_BASE``) and the
MCP server of the page (``examples/word_tools_mcp.py``) started for real over stdio. Every
Python block of the page also compiles in ``tests/test_docs.py``."""

from __future__ import annotations

import ast
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from scripted_llm import Script, ScriptedChatServer, calls, say, tool_results

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tools.md"
MARKER = re.compile(r"^<!--\s*tools-test:\s*(\S+)\s*-->$")


def marked_blocks() -> dict[str, str]:
    """The page's Python blocks with a ``tools-test`` marker on the line before, by name."""
    found: dict[str, str] = {}
    lines = PAGE.read_text().split("\n")
    for i, line in enumerate(lines):
        mark = MARKER.match(line.strip())
        if mark is None:
            continue
        assert lines[i + 1] == "```python", f"docs/tools.md:{i + 2}: a python block must follow"
        end = lines.index("```", i + 2)
        found[mark.group(1)] = "\n".join(lines[i + 2 : end]) + "\n"
    return found


BLOCKS = marked_blocks()


async def check_python_tools(ns: dict[str, Any], server: ScriptedChatServer) -> None:
    run = ns["run"]
    assert run.ok, run.error
    assert run.output == "The input has 4 words; plus ten is 14."
    assert tool_results(server.requests[1]) == ["4"]
    assert tool_results(server.requests[2]) == ["4", "14"]
    assert run.usage.calls == 3
    assert ns["agent"].profile.tools == ["add", "word_count"]


async def check_mcp_and_skills(ns: dict[str, Any], server: ScriptedChatServer) -> None:
    run, editor = ns["run"], ns["editor"]
    assert run.ok, run.error
    assert editor.profile.skills == {"copy-edit": 0.8}
    assert editor.profile.tools == ["mcp:words"]
    assert run.output == "If the build fails, read the log."
    first = server.requests[0]
    assert {t["function"]["name"] for t in first["tools"]} == {"word_count", "longest_word"}
    assert "Cut every word the sentence does not need." in first["messages"][0]["content"]
    assert tool_results(server.requests[1]) == ["15", "7"]


ORIGINAL = "In the event that the build fails, it is necessary to look at the log."
EDITED = "If the build fails, read the log."
CASES: dict[str, tuple[Script, Callable[[dict[str, Any], ScriptedChatServer], Awaitable[None]]]] = {
    "python-tools": (
        [
            calls(("word_count", {"text": "the quick brown fox"})),
            lambda body: calls(("add", {"a": int(tool_results(body)[0]), "b": 10})),
            say("The input has 4 words; plus ten is 14."),
        ],
        check_python_tools,
    ),
    "mcp-and-skills": (
        [
            calls(
                ("word_count", {"text": ORIGINAL}),
                ("word_count", {"text": EDITED}),
            ),
            say(EDITED),
        ],
        check_mcp_and_skills,
    ),
}


def test_every_marked_block_has_a_check() -> None:
    assert set(BLOCKS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_the_page_runs_as_written(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, check = CASES[name]
    code = compile(
        BLOCKS[name], f"docs/tools.md:{name}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CLAWHUB_AGENTS_DIR", str(tmp_path / "agents"))
    async with ScriptedChatServer(script) as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.api_base)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        ns: dict[str, Any] = {"__name__": "docs_block", "tmp_path": tmp_path}
        result = eval(code, ns)  # a coroutine: the block awaits at top level
        if result is not None:
            await result
        await check(ns, server)
