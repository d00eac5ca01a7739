"""``LLMAgent`` with tools, MCP servers and skill files, offline.

The model is a real HTTP server speaking the OpenAI chat completions API
(``tests/scripted_llm.py``): litellm talks to it through ``api_base`` over a real loopback
connection, streaming, and the server returns scripted tool calls and answers and keeps
every request, so the tests see what really went back to the model. The MCP server is a
real one (the mcp SDK's server, ``tests/mcp_tool_server.py``) run over stdio as a
subprocess. Hub tests use the real nats-server, hub and SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import litellm
import pytest
from pydantic import BaseModel, Field
from scripted_llm import ScriptedChatServer, Turn, calls, say, tool_results

from agents_sdk import (
    HubClient,
    LLMAgent,
    RetryPolicy,
    TaskContext,
    ToolLoopStopped,
    ToolServerError,
    as_tool,
    load_skills,
)
from agents_sdk.testing import run_task
from clawhub.runtime import Hub
from clawhub.store import Store
from protocols import Constraints, TaskSpec, TaskState

FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.05, timeout=30.0)
MCP_SERVER = [sys.executable, str(Path(__file__).with_name("mcp_tool_server.py"))]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The hub tests here run on SQLite only: the subject is the agent."""
    return sqlite_store


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words are counted.
    """
    return len(text.split())


async def add(a: int, b: Annotated[int, Field(description="The second number.")] = 0) -> int:
    """Add two integers."""
    return a + b


def agent(server: ScriptedChatServer, tmp_path: Path, **kw: Any) -> LLMAgent:
    kw.setdefault("retry", FAST)
    kw.setdefault("model", "openai/scripted")
    return LLMAgent(
        "tooler",
        api_base=server.api_base,
        api_key="sk-test",
        memory_notes=0,
        data_dir=tmp_path / "tooler",
        **kw,
    )


def answer_from_results(body: dict[str, Any]) -> Turn:
    """A final answer built from the tool results the agent sent back."""
    return say("results: " + ", ".join(tool_results(body)))


# -- tool specs from Python functions -------------------------------------------------------------


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    count, plus = as_tool(word_count), as_tool(add)
    assert count.spec() == {
        "type": "function",
        "function": {
            "name": "word_count",
            "description": "Count the words in a text.",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {
                        "type": "string",
                        "title": "Text",
                        "description": "The text whose words are counted.",
                    }
                },
                "required": ["text"],
                "additionalProperties": False,
            },
        },
    }
    params = plus.parameters
    assert params["required"] == ["a"]
    assert params["properties"]["b"]["default"] == 0
    assert params["properties"]["b"]["description"] == "The second number."


class Person(BaseModel):
    """Someone on the team."""

    name: str = Field(description="Their login.")
    email: str | None = None


class Issue(BaseModel):
    """An issue for the tracker."""

    title: str = Field(description="A one-line summary.")
    assignee: Person
    labels: list[str] = Field(default_factory=list, description="Labels to put on it.")


filed: list[tuple[Issue, bool]] = []


def file_issue(issue: Issue, urgent: bool = False) -> str:
    """File an issue in the tracker.

    Args:
        issue: The issue to file.
        urgent: Page the assignee too.
    """
    filed.append((issue, urgent))
    return f"filed {issue.title!r} for {issue.assignee.name}"


PERSON_SCHEMA = {
    "type": "object",
    "title": "Person",
    "description": "Someone on the team.",
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "Their login."},
        "email": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "default": None,
            "title": "Email",
        },
    },
    "required": ["name"],
}


def test_a_pydantic_model_parameter_is_a_nested_object_in_the_schema() -> None:
    """No ``$ref``: the model's object inline, with the field's description from ``Args:``
    (a description beside a ``$ref`` is ignored) and the nested required fields."""
    params = as_tool(file_issue).parameters
    assert "$defs" not in params
    assert params["required"] == ["issue"]
    assert params["properties"]["issue"] == {
        "type": "object",
        "title": "Issue",
        "description": "The issue to file.",
        "properties": {
            "title": {"type": "string", "title": "Title", "description": "A one-line summary."},
            "assignee": PERSON_SCHEMA,
            "labels": {
                "type": "array",
                "items": {"type": "string"},
                "title": "Labels",
                "description": "Labels to put on it.",
            },
        },
        "required": ["title", "assignee"],
    }
    assert params["properties"]["urgent"]["default"] is False


class Node(BaseModel):
    label: str
    children: list[Node] = []


def test_a_recursive_model_keeps_its_definitions() -> None:
    def depth(tree: Node) -> int:
        """How deep a tree is."""
        return 1 + max((depth(c) for c in tree.children), default=0)

    params = as_tool(depth).parameters
    assert params["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert params["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_a_task_context_parameter_is_injected_not_described() -> None:
    async def whoami(ctx: TaskContext, greeting: str) -> str:
        """Say which task this is."""
        return f"{greeting} from {ctx.task_id}"

    spec = as_tool(whoami).parameters
    assert list(spec["properties"]) == ["greeting"]


def test_tools_that_cannot_be_described_or_named_are_refused() -> None:
    def splat(*args: int) -> int:
        return 0

    with pytest.raises(TypeError, match=r"\*args"):
        as_tool(splat)
    with pytest.raises(ValueError, match="tool name"):
        as_tool(word_count, name="word count")
    with pytest.raises(ValueError, match="two tools are named 'word_count'"):
        LLMAgent("x", model="openai/gpt-4o-mini", tools=[word_count, word_count])


# -- the loop against a real OpenAI-compatible server ---------------------------------------------


async def test_a_task_needing_two_tool_calls_reaches_done(tmp_path: Path) -> None:
    script = [
        calls(("word_count", {"text": "the quick brown fox"})),
        lambda body: calls(("add", {"a": int(tool_results(body)[-1]), "b": 10})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, tools=[word_count, add])
        assert tooler.profile.tools == ["add", "word_count"]
        run = await run_task(tooler, title="Count, then add ten")
    assert run.ok, run.error
    assert run.output == "results: 4, 14"
    assert len(server.requests) == 3
    first = server.requests[0]
    assert first["stream"] is True
    assert {t["function"]["name"] for t in first["tools"]} == {"add", "word_count"}
    # each tool result really went back, answering the call the model made
    second, third = server.requests[1]["messages"], server.requests[2]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "word_count"
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "name": "word_count",
        "content": "4",
    }
    assert tool_results(server.requests[2]) == ["4", "14"]
    assert third[-2]["tool_calls"][0]["function"]["arguments"] == '{"a": 4, "b": 10}'
    # usage over every call: 3 calls of 20 prompt and 5 completion tokens (the script's)
    assert run.usage is not None
    assert (run.usage.calls, run.usage.prompt_tokens, run.usage.completion_tokens) == (3, 60, 15)
    messages = [p.message or "" for p in run.progress if not p.log]
    assert any(m.startswith("step 1: calling word_count(") for m in messages)
    assert any(m.startswith("step 2: calling add(") for m in messages)
    assert messages[-1].startswith("answered: 75 tokens")
    assert run.logs[0] == "tools offered to openai/scripted: add, word_count"
    assert run.logs[1] == "litellm has no price for openai/scripted: its cost counts as 0"
    assert run.logs[2].startswith('tool word_count({"text": "the quick brown fox"}) → 4 (')
    assert run.logs[3].startswith('tool add({"a": 4, "b": 10}) → 14 (')
    assert len(run.logs) == 4  # the price note once, not once per call


async def test_mock_response_still_answers_an_agent_with_tools(tmp_path: Path) -> None:
    """litellm's ``mock_response`` (no server) for the simple case: a direct answer."""
    mocked = LLMAgent(
        "m",
        model="openai/gpt-4o-mini",
        tools=[word_count],
        mock_response="Four words.",
        data_dir=tmp_path / "m",
    )
    run = await run_task(mocked, title="t")
    assert run.ok, run.error
    assert run.output == "Four words."
    assert run.logs == ["tools offered to openai/gpt-4o-mini: word_count"]
    assert run.usage is not None and run.usage.calls == 1 and run.usage.cost > 0


async def test_a_tool_error_is_fed_back_and_the_model_recovers(tmp_path: Path) -> None:
    tried: list[str] = []

    def fetch(url: str) -> str:
        """Fetch a page."""
        tried.append(url)
        if not url.startswith("https://"):
            raise ConnectionError(f"refusing plain {url}")
        return "<h1>ok</h1>"

    script = [
        calls(("fetch", {"url": "http://example.test"})),
        calls(("fetch", {"url": "https://example.test"})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server:
        run = await run_task(agent(server, tmp_path, tools=[fetch]), title="Fetch it")
    assert run.ok, run.error
    assert tried == ["http://example.test", "https://example.test"]
    [error] = tool_results(server.requests[1])
    assert error == "error: fetch raised ConnectionError: refusing plain http://example.test"
    assert run.output == f"results: {error}, <h1>ok</h1>"
    assert any(line.startswith("tool fetch(") and " failed: error:" in line for line in run.logs)


async def test_unknown_tools_and_bad_arguments_go_back_to_the_model(tmp_path: Path) -> None:
    script = [
        calls(
            ("delete_everything", {}),
            ("word_count", '{"text": "unterminated'),
            ("word_count", {"text": 42}),
            ("word_count", {"text": "a b", "lang": "en"}),
            ("word_count", "[1, 2]"),
        ),
        calls(("word_count", {"text": "now it works"})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server:
        run = await run_task(agent(server, tmp_path, tools=[word_count]), title="t")
    assert run.ok, run.error
    unknown, not_json, wrong_type, extra, not_object = tool_results(server.requests[1])
    assert unknown == "error: there is no tool named 'delete_everything'; the tools are: word_count"
    assert not_json.startswith("error: the arguments are not valid JSON")
    assert wrong_type == (
        "error: the arguments do not match the tool's schema: text: Input should be a valid string"
    )
    assert extra == (
        "error: the arguments do not match the tool's schema: lang: Extra inputs are not permitted"
    )
    assert not_object == "error: the arguments must be a JSON object, got '[1, 2]'"
    assert tool_results(server.requests[2])[-1] == "3"
    assert run.output.endswith(", 3")  # type: ignore[union-attr]


async def test_a_model_argument_is_validated_into_the_pydantic_model(tmp_path: Path) -> None:
    """The model's JSON arguments become an ``Issue`` (a nested ``Person`` in it); arguments
    that do not fit the model go back to the model as an error naming the nested field."""
    filed.clear()
    issue = {"title": "Login fails", "assignee": {"name": "ada"}, "labels": ["bug"]}
    script = [
        calls(
            ("file_issue", {"issue": {"title": "Login fails", "assignee": {}}}),
            ("file_issue", {"issue": {"title": 7, "assignee": {"name": "ada"}}, "urgent": "maybe"}),
            ("file_issue", {"issue": "Login fails"}),
        ),
        calls(("file_issue", {"issue": issue, "urgent": True})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server:
        run = await run_task(agent(server, tmp_path, tools=[file_issue]), title="File it")
    assert run.ok, run.error
    [offered] = server.requests[0]["tools"]
    assert offered["function"]["parameters"] == as_tool(file_issue).parameters
    no_name, wrong_types, not_an_object = tool_results(server.requests[1])
    prefix = "error: the arguments do not match the tool's schema: "
    assert no_name == prefix + "issue.assignee.name: Field required"
    assert wrong_types == (
        prefix + "issue.title: Input should be a valid string; "
        "urgent: Input should be a valid boolean, unable to interpret input"
    )
    assert not_an_object == (
        prefix + "issue: Input should be a valid dictionary or instance of Issue"
    )
    [(got, urgent)] = filed  # only the good call ran the tool
    assert isinstance(got, Issue) and isinstance(got.assignee, Person)
    assert got == Issue(title="Login fails", assignee=Person(name="ada"), labels=["bug"])
    assert urgent is True
    assert run.output == f"results: {no_name}, {wrong_types}, {not_an_object}, " + (
        "filed 'Login fails' for ada"
    )


async def test_max_steps_stops_a_model_that_never_stops_calling(tmp_path: Path) -> None:
    counted: list[str] = []

    def again(note: str) -> str:
        """Call me again."""
        counted.append(note)
        return "again"

    async with ScriptedChatServer([calls(("again", {"note": "more"}))]) as server:
        run = await run_task(agent(server, tmp_path, tools=[again], max_steps=3), title="loop")
    assert not run.ok
    assert isinstance(run.exception, ToolLoopStopped)
    assert run.exception.reason == "max_steps" and run.exception.steps == 3
    assert run.error == (
        "ToolLoopStopped: openai/scripted: stopped after max_steps=3 model calls without a "
        "final answer (the last one still asked for again)"
    )
    assert len(server.requests) == 3
    assert counted == ["more", "more"]  # the third call's tools are not run: nobody would read
    assert run.usage is not None and run.usage.calls == 3


async def test_the_budget_stops_the_loop(tmp_path: Path) -> None:
    """gpt-4o-mini is in litellm's price data: the server's token counts cost money."""
    script = [calls(("word_count", {"text": "x"}), prompt_tokens=100_000, completion_tokens=10)]
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=100_000, completion_tokens=10
    )
    per_call = prompt_cost + completion_cost
    assert per_call > 0
    async with ScriptedChatServer(script) as server:
        priced = agent(server, tmp_path, model="openai/gpt-4o-mini", tools=[word_count])
        free = await run_task(priced, title="t", spec=None)
        assert not free.ok and isinstance(free.exception, ToolLoopStopped)
        assert free.exception.reason == "max_steps"  # no cap: it ran to max_steps (10)
        assert len(server.requests) == 10

        capped = agent(server, tmp_path, model="openai/gpt-4o-mini", tools=[word_count])
        capped.max_cost = 1.5 * per_call  # room for one call, not two
        run = await run_task(capped, title="t")
        assert isinstance(run.exception, ToolLoopStopped) and run.exception.reason == "budget"
        assert run.exception.steps == 2
        assert run.usage is not None and run.usage.cost == pytest.approx(2 * per_call)
        assert (
            f"spent ${2 * per_call:.6f} of its budget of ${1.5 * per_call:.6f} after 2 model calls"
        ) in str(run.error)

        # a task's own constraints.max_cost caps it too
        spec = TaskSpec(id="cheap", title="t", constraints=Constraints(max_cost=per_call / 2))
        task_capped = agent(server, tmp_path, model="openai/gpt-4o-mini", tools=[word_count])
        run = await run_task(task_capped, spec=spec)
        assert isinstance(run.exception, ToolLoopStopped) and run.exception.steps == 1
    assert len(server.requests) == 13


async def test_a_builtin_tool_gets_the_task_context(tmp_path: Path) -> None:
    """The extension point for built-in tools (delegation, memory): a ``TaskContext``
    parameter receives the running attempt's context."""

    async def note(ctx: TaskContext, fact: str) -> str:
        """Keep a fact in your memory."""
        await asyncio.to_thread(ctx.memory.note, fact, tags=["tool"], task_id=ctx.task_id)
        await ctx.progress(None, "noted")
        return f"noted for {ctx.task_id}"

    script = [calls(("note", {"fact": "the sky is green here"})), answer_from_results]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, tools=[note])
        run = await run_task(tooler, title="t", task_id="t-42")
    assert run.ok, run.error
    assert run.output == "results: noted for t-42"
    assert tooler.memory.search("sky green")[0].task_id == "t-42"


async def test_a_slow_tool_times_out_into_an_error_for_the_model(tmp_path: Path) -> None:
    async def slow(seconds: float) -> str:
        """Wait."""
        await asyncio.sleep(seconds)
        return "woke"

    script = [calls(("slow", {"seconds": 60})), answer_from_results]
    async with ScriptedChatServer(script) as server:
        run = await run_task(agent(server, tmp_path, tools=[slow], tool_timeout=0.5), title="t")
    assert run.ok, run.error
    assert run.output == "results: error: slow did not finish within 0.5s"


# -- MCP servers as toolkits ----------------------------------------------------------------------


async def test_an_mcp_server_over_stdio_provides_tools_the_model_calls(tmp_path: Path) -> None:
    script = [
        calls(("word_count", {"text": "one two three four"}), ("shout", {"text": ""})),
        calls(("shout", {"text": "hi"})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, mcp_servers=[{"command": MCP_SERVER, "name": "test"}])
        assert tooler.profile.tools == ["mcp:test"]
        run = await run_task(tooler, title="Count and shout")
    assert run.ok, run.error
    offered = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    assert set(offered) == {"word_count", "shout", "pid", "wait", "crash"}
    assert offered["word_count"]["description"] == "Count the words in a text."
    assert offered["word_count"]["parameters"]["required"] == ["text"]
    count, refused = tool_results(server.requests[1])
    assert count == "4"
    assert refused == "error: Error executing tool shout: nothing to shout"  # fed back
    assert tool_results(server.requests[2])[-1] == "HI!"
    assert run.output == f"results: 4, {refused}, HI!"


async def test_an_mcp_server_that_dies_mid_task_fails_the_attempt_clearly(
    tmp_path: Path,
) -> None:
    script = [calls(("crash", {})), say("unreachable")]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, mcp_servers=[{"command": MCP_SERVER, "name": "calc"}])
        run = await run_task(tooler, title="Crash it")
        assert not run.ok
        assert isinstance(run.exception, ToolServerError)
        assert run.exception.server == "calc"
        assert run.error == (
            "ToolServerError: MCP server calc: calling crash failed: the server closed the "
            "connection (it died or exited)"
        )
        assert len(server.requests) == 1  # the model was not asked again
        # the agent is not broken: the next task starts a fresh server
        server.script = [calls(("word_count", {"text": "a b"})), answer_from_results]
        server.requests.clear()
        again = await run_task(tooler, title="Count")
    assert again.ok, again.error
    assert again.output == "results: 2"


async def test_a_task_cancelled_mid_call_stops_its_mcp_server(tmp_path: Path) -> None:
    """A revoked attempt (here: its handler cancelled while an MCP tool sleeps) leaves no
    server process behind."""
    script = [calls(("pid", {})), calls(("wait", {"seconds": 600})), say("unreachable")]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, mcp_servers=[{"command": MCP_SERVER}])
        running = asyncio.ensure_future(run_task(tooler, title="t"))
        while len(server.requests) < 2:  # the model asked for "wait": the call is under way
            assert not running.done(), running.result().error
            await asyncio.sleep(0.05)
        [pid] = tool_results(server.requests[1])
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    deadline = time.monotonic() + 60
    while True:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break  # gone (and reaped)
        assert time.monotonic() < deadline, f"MCP server {pid} still runs after the cancel"
        await asyncio.sleep(0.1)


async def test_an_mcp_server_that_cannot_start_fails_the_attempt_clearly(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    missing = tmp_path / "no-such-server"
    async with ScriptedChatServer([say("unused")]) as server:
        no_command = agent(server, tmp_path, mcp_servers=[{"command": [str(missing)]}])
        no_listener = agent(server, tmp_path, mcp_servers=[f"http://127.0.0.1:{closed}/mcp"])
        first = await run_task(no_command, title="t")
        second = await run_task(no_listener, title="t")
    assert isinstance(first.exception, ToolServerError)
    assert str(first.error).startswith(
        "ToolServerError: MCP server no-such-server: starting it and listing its tools failed:"
    )
    assert isinstance(second.exception, ToolServerError)
    assert second.error == (
        f"ToolServerError: MCP server 127.0.0.1:{closed}: starting it and listing its tools "
        "failed: ConnectError: All connection attempts failed"
    )
    assert server.requests == []  # the model is not asked without its tools


@pytest.fixture
def mcp_http_url() -> Iterator[str]:
    """The test MCP server over Streamable HTTP, as its own process on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [*MCP_SERVER, "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "the MCP HTTP server did not listen in 60s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_an_mcp_server_by_url_provides_tools(tmp_path: Path, mcp_http_url: str) -> None:
    script = [calls(("web_word_count", {"text": "over streamable http"})), answer_from_results]
    async with ScriptedChatServer(script) as server:
        tooler = agent(server, tmp_path, mcp_servers=[{"url": mcp_http_url, "prefix": "web_"}])
        run = await run_task(tooler, title="Count over HTTP")
    assert run.ok, run.error
    names = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert names == {"web_word_count", "web_shout", "web_pid", "web_wait", "web_crash"}
    assert run.output == "results: 3"


async def test_a_command_that_floods_garbage_instead_of_mcp_fails_clearly(
    tmp_path: Path,
) -> None:
    flood = [
        sys.executable,
        "-c",
        "import sys\nwhile True: sys.stdout.write('garbage ' * 500 + '\\n')",
    ]
    async with ScriptedChatServer([say("unused")]) as server:
        tooler = agent(server, tmp_path, mcp_servers=[{"command": flood, "name": "noise"}])
        tooler.toolbox.timeout = 3.0  # how long it may take to start and list its tools
        run = await run_task(tooler, title="t")
    assert isinstance(run.exception, ToolServerError)
    assert run.error == (
        "ToolServerError: MCP server noise: starting it and listing its tools failed: "
        "the server did not answer in time"
    )
    assert server.requests == []


def test_mcp_server_entries_are_checked_when_the_agent_is_built() -> None:
    for bad, why in [
        ({"command": []}, "'command' is empty"),
        ({"url": "ftp://x"}, "must be http"),
        ({"command": ["x"], "url": "http://x"}, "either 'command' or 'url'"),
        ({"cmd": ["x"]}, "unknown keys"),
        (42, "a URL or a mapping"),
    ]:
        with pytest.raises(ValueError, match=why):
            LLMAgent("x", model="openai/gpt-4o-mini", mcp_servers=[bad])  # type: ignore[list-item]


# -- skills as instructions -----------------------------------------------------------------------


def write_skills(folder: Path) -> Path:
    folder.mkdir()
    (folder / "sql-review.md").write_text(
        "---\nlevel: 0.8\ndescription: Reviews SQL migrations\n---\n"
        "Check every statement for table locks and data loss.\n"
    )
    (folder / "haiku.md").write_text("Answer in three lines of 5, 7 and 5 syllables.\n")
    return folder


async def test_skill_files_join_the_profile_and_the_prompt(tmp_path: Path) -> None:
    skills = write_skills(tmp_path / "skills")
    async with ScriptedChatServer([say("fine")]) as server:
        tooler = agent(server, tmp_path, skills_dir=skills, skills={"haiku": 0.3})
        assert tooler.profile.skills == {"sql-review": 0.8, "haiku": 0.3}  # skills= wins
        review = await run_task(tooler, title="Review", skills={"sql-review": 0.5})
        other = await run_task(tooler, title="Other", skills={"writing": 0.5})
    assert review.ok and other.ok
    system = server.requests[0]["messages"][0]["content"]
    assert "## sql-review\nCheck every statement for table locks and data loss." in system
    assert "syllables" not in system
    assert "# Instructions for the skills" not in server.requests[1]["messages"][0]["content"]


def test_a_broken_skill_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "skills"
    folder.mkdir()
    (folder / "bad.md").write_text("---\nlevel: 3\n---\nDo it.\n")
    with pytest.raises(ValueError, match=r"bad\.md: level 3.0 is not within 0\.\.1"):
        load_skills(folder)
    (folder / "bad.md").write_text("---\nlevel: 0.5\n")
    with pytest.raises(ValueError, match="never closed"):
        load_skills(folder)
    with pytest.raises(ValueError, match="does not exist"):
        load_skills(tmp_path / "nowhere")


# -- on a real hub -------------------------------------------------------------------------------


async def test_a_tool_using_agent_completes_a_task_on_a_hub(hub: Hub, tmp_path: Path) -> None:
    script = [calls(("word_count", {"text": "to be or not to be"})), answer_from_results]
    async with ScriptedChatServer(script) as server, HubClient(hub.url) as client:
        tooler = agent(server, tmp_path, id="tooler-1", tools=[word_count], skills={"text": 0.9})
        await tooler.start(hub.url)
        try:
            [info] = [a for a in await client.agents() if a.profile.id == "tooler-1"]
            assert info.profile.tools == ["word_count"]
            [tid] = await client.submit([TaskSpec(title="Count", skills={"text": 0.5})])
            status = await client.wait(tid, timeout=60)
        finally:
            await tooler.stop()
        logs = [e.message for e in await client.history(tid, kind="task.log")]
    assert status.state is TaskState.DONE, status.error
    assert status.output == "results: 6"
    assert status.usage is not None and status.usage.calls == 2
    assert "tools offered to openai/scripted: word_count" in logs
    assert any(m.startswith('tool word_count({"text": "to be or not to be"}) → 6') for m in logs)


async def test_a_dead_mcp_server_fails_the_attempt_and_the_hub_retries(
    hub: Hub, tmp_path: Path
) -> None:
    """The first attempt's server dies; the attempt fails with the reason, the hub gives the
    task another attempt, whose fresh server answers."""
    script = [
        calls(("crash", {})),
        calls(("word_count", {"text": "a b c"})),
        answer_from_results,
    ]
    async with ScriptedChatServer(script) as server, HubClient(hub.url) as client:
        tooler = agent(
            server, tmp_path, id="mcp-1", mcp_servers=[{"command": MCP_SERVER, "name": "calc"}]
        )
        await tooler.start(hub.url)
        try:
            spec = TaskSpec(title="Count", max_attempts=2)
            [tid] = await client.submit([spec])
            status = await client.wait(tid, timeout=90)
        finally:
            await tooler.stop()
    assert status.state is TaskState.DONE, status.error
    assert status.output == "results: 3"
    first, second = status.history
    assert first.outcome == "error"
    assert "MCP server calc: calling crash failed" in first.reason
    assert second.outcome == "done"


def test_the_scripted_server_records_json_bodies() -> None:
    """The helper itself: a non-streamed request gets one JSON reply (litellm is not
    involved; a plain socket client checks the framing)."""

    async def go() -> dict[str, Any]:
        async with ScriptedChatServer([calls(("f", {"x": 1}))]) as server:
            port = int(server.api_base.split(":")[2].split("/")[0])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = json.dumps({"model": "m", "messages": []}).encode()
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.decode().split("Content-Length: ")[1].split("\r\n")[0])
            reply: dict[str, Any] = json.loads(await reader.readexactly(length))
            writer.close()
            assert server.requests == [{"model": "m", "messages": []}]
            return reply

    reply = asyncio.run(go())
    [call] = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"x": 1}'}
