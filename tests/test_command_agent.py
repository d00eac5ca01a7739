"""Command-line agents as workers (``agents_sdk.CommandAgent``, ``clawhub agent run``): real
subprocesses (the stand-ins in ``tests/bin``, first on PATH) against a real hub on a real
nats-server and SQLite. No timed assertion: every wait polls with a generous timeout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from conftest import MakeHub

from agents_sdk import CommandAgent, CommandFailed, CommandNotFound, HubClient
from agents_sdk.presets import PRESETS
from clawhub.runtime import Hub
from protocols import Event, Progress, TaskStatus, decode, subjects

BIN = Path(__file__).resolve().parent / "bin"
PATH = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
WAIT = 120.0  # seconds: a starved machine is slow, never wrong


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def until(check: Callable[[], bool], timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Agents:
    """Starts command agents on the test's hub and stops them all at the end."""

    def __init__(self, hub: Hub, tmp_path: Path) -> None:
        self.hub = hub
        self.tmp_path = tmp_path
        self.started: list[CommandAgent] = []

    async def start(
        self, agent_id: str, command: list[str] | None = None, **kw: Any
    ) -> CommandAgent:
        token = kw.pop("token", None)
        kw.setdefault("skills", {"python": 0.5})
        kw.setdefault("workdir", self.tmp_path / "runs")
        env = {"PATH": PATH, **kw.pop("env", {})}
        agent = CommandAgent(
            command, id=agent_id, env=env, data_dir=self.tmp_path / "agents" / agent_id, **kw
        )
        await agent.start(self.hub.url, timeout=30, token=token)
        self.started.append(agent)
        return agent


@pytest.fixture
async def hub(make_hub: MakeHub) -> Hub:
    # generous: a starved machine may take seconds to start a stand-in; the hang test
    # sets a short stall timeout on its own task
    return await make_hub(None, stall_timeout=60.0)


@pytest.fixture
async def agents(hub: Hub, tmp_path: Path) -> AsyncIterator[Agents]:
    made = Agents(hub, tmp_path)
    yield made
    for agent in made.started:
        await agent.stop(timeout=30)


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[HubClient]:
    async with HubClient(hub.url, timeout=30) as c:
        yield c


async def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    """A process run to its end in a thread (the event loop keeps the agents going)."""
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=WAIT, check=check, **kw
    )


def attempts(status: TaskStatus) -> list[tuple[str, str]]:
    return [(a.agent_id, a.outcome) for a in status.history]


# -- a task to done ------------------------------------------------------------------------------


async def test_a_task_runs_through_a_real_subprocess_to_done(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    await agents.start("scripter", [str(BIN / "fake-agent"), "answer", "{prompt_file}"])
    task_id = await client.submit_task("Write the parser", skills={"python": 0.5})
    status = await client.wait(task_id, WAIT)
    assert status.state == "done", status.error
    assert status.output == "starting Write the parser\nwrote WORK.md\ndid: Write the parser"
    assert attempts(status) == [("scripter", "done")]
    # the attempt's folder is gone once it ran
    assert list((tmp_path / "runs").iterdir()) == []


async def test_the_command_gets_the_task_its_files_and_never_the_agents_token(
    agents: Agents, client: HubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAWHUB_TOKEN", "tk-secret.never-passed-on")  # read by nothing here
    leak = {"CLAWHUB_TOKEN": "tk-other.not-this-either"}  # not even when configured
    await agents.start("reporter", [str(BIN / "fake-agent"), "report"], token="", env=leak)
    first = await client.submit_task("Base", skills={"python": 0.5}, id="base")
    assert (await client.wait(first, WAIT)).state == "done"
    task_id = await client.submit_task(
        "Report",
        skills={"python": 0.5},
        input={"n": 1},
        depends_on=[first],
        acceptance=["says what it got"],
        output_schema={"type": "object", "required": ["task_id"]},
    )
    status = await client.wait(task_id, WAIT)
    assert status.state == "done", status.error
    out = status.output
    assert isinstance(out, dict)
    assert out["title"] == "Report" and out["task_id"] == task_id == out["task_file_id"]
    assert out["attempt"] == 1 and out["cwd"] == out["workdir"]
    assert out["token_seen"] is False
    assert out["prompt_has_input"] and out["prompt_has_deps"] and out["prompt_has_acceptance"]


async def test_a_result_written_to_the_output_file_wins_over_stdout(
    agents: Agents, client: HubClient
) -> None:
    await agents.start("filer", [str(BIN / "fake-agent"), "outfile", "{prompt_file}"])
    status = await client.wait(await client.submit_task("Sum", skills={"python": 0.5}), WAIT)
    assert status.state == "done", status.error
    assert status.output == {"sum": 42, "title": "Sum"}


# -- hangs, failures, cancels --------------------------------------------------------------------

# Talks for 15 ticks of 0.2 s (3 s at least, twice the stall timeout below), on the stream
# its argument names, then answers on stdout. A shell loop: no interpreter to start, so its
# first line comes at once.
CHATTY = (
    'i=0; while [ "$i" -lt 15 ]; do if [ "$1" = stderr ]; then echo "tick $i" >&2; '
    'else echo "tick $i"; fi; i=$((i + 1)); sleep 0.2; done; echo chatted'
)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_a_chatty_command_is_not_stalled_and_its_lines_are_the_tasks_progress(
    agents: Agents, client: HubClient, stream: str
) -> None:
    progress: list[str] = []

    async def on_event(msg: Any) -> None:
        event = decode(msg.data, Event)
        if event.kind == "task.progress":
            progress.append(event.message)

    sub = await client.nc.subscribe(subjects.task_events(client.group), cb=on_event)
    await client.nc.flush()
    # a line at most every 0.2 s reaches the hub, well inside the 1.5 s stall timeout
    await agents.start("talker", ["sh", "-c", CHATTY, "chatty", stream], progress_interval=0.2)
    try:
        task_id = await client.submit_task(
            "Talk", skills={"python": 0.5}, timeouts={"stall": 1.5}, max_attempts=1
        )
        status = await client.wait(task_id, WAIT)
    finally:
        await sub.unsubscribe()
    assert status.state == "done", status.error
    assert attempts(status) == [("talker", "done")]
    assert isinstance(status.output, str) and status.output.endswith("chatted")
    [run] = status.history
    assert run.started_at is not None and run.ended_at is not None
    # not a speed bound: proof that it ran past the stall timeout, and was not stalled
    assert run.ended_at - run.started_at > 1.5
    prefix = "stderr: " if stream == "stderr" else ""
    ticks = [m for m in progress if m.startswith(f"{prefix}tick ")]
    assert len(ticks) >= 3, progress  # the lines themselves, as the task's progress


async def test_a_silent_hung_command_is_stalled_killed_with_its_children_and_reassigned(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    hang = [str(BIN / "fake-agent"), "hang", "{prompt_file}"]
    await agents.start("hanger", hang, skills={"python": 0.9}, env={"PIDS_FILE": str(pids)})
    answer = [str(BIN / "fake-agent"), "answer", "{prompt_file}"]
    await agents.start("steady", answer, skills={"python": 0.6})
    task_id = await client.submit_task("Hang", skills={"python": 0.5}, timeouts={"stall": 3.0})
    status = await client.wait(task_id, WAIT)
    assert status.state == "done", status.error
    assert attempts(status) == [("hanger", "stalled"), ("steady", "done")]
    assert "no progress" in status.history[0].reason
    leader, child = (int(p) for p in pids.read_text().split())
    await until(lambda: not alive(leader) and not alive(child))


async def test_a_non_zero_exit_fails_the_attempt_with_stderr_and_is_retried_elsewhere(
    agents: Agents, client: HubClient
) -> None:
    await agents.start("failer", [str(BIN / "fake-agent"), "fail"], skills={"python": 0.85})
    await agents.start("steady", [str(BIN / "fake-agent"), "answer"], skills={"python": 0.8})
    status = await client.wait(await client.submit_task("Flaky", skills={"python": 0.5}), WAIT)
    assert status.state == "done", status.error
    assert attempts(status) == [("failer", "error"), ("steady", "done")]
    reason = status.history[0].reason
    assert "CommandFailed: fake-agent exited with code 3" in reason, reason
    assert "boom: the input makes no sense" in reason


@pytest.mark.parametrize("mode", ["hang", "stubborn"])  # stubborn: deaf to SIGTERM
async def test_a_cancel_kills_the_whole_process_group(
    agents: Agents, client: HubClient, tmp_path: Path, mode: str
) -> None:
    pids = tmp_path / "pids"
    await agents.start(
        "hanger", [str(BIN / "fake-agent"), mode], grace=1.0, env={"PIDS_FILE": str(pids)}
    )
    task_id = await client.submit_task("Hang until cancelled", skills={"python": 0.5})
    await until(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    leader, child = (int(p) for p in pids.read_text().split())
    assert alive(leader) and alive(child)
    assert (await client.cancel(task_id, "not needed")).state == "cancelled"
    await until(lambda: not alive(leader) and not alive(child))
    await until(lambda: list((tmp_path / "runs").iterdir()) == [])  # and its folder removed


async def test_what_a_command_leaves_running_is_ended_when_it_exits(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    daemon = [str(BIN / "fake-agent"), "daemon"]
    await agents.start("leaver", daemon, grace=1.0, env={"PIDS_FILE": str(pids)})
    status = await client.wait(await client.submit_task("Leave", skills={"python": 0.5}), WAIT)
    assert status.state == "done", status.error
    assert status.output == "done, and left a child behind for Leave"
    leader, child = (int(p) for p in pids.read_text().split())
    assert not alive(leader) and not alive(child)  # ended before the result went out


async def test_stopping_the_agent_ends_the_commands_it_runs(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    hang = [str(BIN / "fake-agent"), "hang"]
    agent = await agents.start("quitter", hang, grace=1.0, env={"PIDS_FILE": str(pids)})
    await client.submit_task("Hang until the agent stops", skills={"python": 0.5})
    await until(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    leader, child = (int(p) for p in pids.read_text().split())
    await agent.stop(timeout=30)  # as on Ctrl-C: the running attempt is cancelled
    await until(lambda: not alive(leader) and not alive(child))


async def test_two_tasks_run_at_once_in_separate_workdirs(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    meet = tmp_path / "meet"
    together = [str(BIN / "fake-agent"), "together", "{prompt_file}"]
    await agents.start("pair", together, capacity=2, env={"MEET_FILE": str(meet)})
    ids = [await client.submit_task(f"Half {i}", skills={"python": 0.5}) for i in (1, 2)]
    done = await client.wait_all(ids, WAIT)
    assert [s.state for s in done] == ["done", "done"], [s.error for s in done]
    dirs = meet.read_text().split()
    assert len(set(dirs)) == 2 and {s.output for s in done} == set(dirs)
    assert all(attempts(s) == [("pair", "done")] for s in done)


async def test_a_command_that_is_not_there_fails_at_start_not_per_task(
    hub: Hub, tmp_path: Path
) -> None:
    agent = CommandAgent(["no-such-agent-here", "{prompt}"], id="ghost", env={"PATH": PATH})
    with pytest.raises(CommandNotFound, match="'no-such-agent-here' is not on PATH"):
        await agent.start(hub.url, timeout=30)
    assert "ghost" not in hub.board.agents  # it never joined, so no task is offered to it
    clawhub = str(Path(sys.executable).parent / "clawhub")
    proc = await sh(
        *(clawhub, "agent", "run", "--url", hub.url, "--id", "ghost", "-s", "python=0.5"),
        *("--", str(tmp_path / "missing.sh")),
        env={**os.environ, "PATH": PATH},
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "command not found" in proc.stderr and "missing.sh" in proc.stderr


async def test_a_flood_of_output_is_rate_limited_and_the_task_still_completes(
    agents: Agents, client: HubClient, hub: Hub
) -> None:
    seen: list[Progress] = []
    nc = await nats.connect(hub.url)

    async def on_progress(msg: Any) -> None:
        message = decode(msg.data, Progress)
        assert isinstance(message, Progress)
        seen.append(message)

    await nc.subscribe(subjects.hub_progress(hub.settings.group, "anon"), cb=on_progress)
    try:
        flood = [str(BIN / "fake-agent"), "flood", "{prompt_file}"]
        await agents.start("chatty", flood, env={"FLOOD_LINES": "20000"})
        task_id = await client.submit_task("Flood", skills={"python": 0.5})
        status = await client.wait(task_id, WAIT)
    finally:
        await nc.drain()
    assert status.state == "done", status.error
    assert isinstance(status.output, str)
    assert status.output.startswith("[… ") and "earlier characters cut]" in status.output
    assert status.output.endswith("final answer for Flood")
    assert len(status.output) < 110_000
    mine = [p for p in seen if p.task_id == task_id]
    assert mine and "more lines)" in "".join(p.message or "" for p in mine)
    assert len(mine) < 2000, len(mine)  # 20,002 lines, a small fraction of messages


# -- the presets, with stand-ins of the real tools ----------------------------------------------

PRESET_CASES = {
    # preset: (who answers, prompt tokens, completion tokens, cost, model in the usage)
    "claude": ("claude", 150, 50, 0.0123, "anthropic/claude-sonnet-4-5"),
    "codex": ("codex", 200, 40, 0.0, "openai/codex"),
    "aider": ("aider", 2100, 150, 0.0042, "aider"),
    "gemini": ("gemini", 300, 30, 0.0, "gemini/gemini-2.5-pro"),
}


def assert_preset_result(
    preset: str, status: TaskStatus, title: str, label: str | None = None
) -> None:
    """``status`` is the task ``title`` done by the stand-in of ``preset``, with the answer
    and usage that stand-in prints. The usage's model is the one the tool reports, else the
    agent's model ``label`` (default: the preset's)."""
    who, prompt_tokens, completion_tokens, cost, model = PRESET_CASES[preset]
    assert status.state == "done", status.error
    if preset == "aider":  # stdout is the answer
        assert isinstance(status.output, str) and status.output.endswith(f"aider did: {title}")
    else:
        assert status.output == f"{who} did: {title}"
    usage = status.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt_tokens, completion_tokens)
    assert usage.cost == pytest.approx(cost)  # 0 where the tool prints no cost
    reported = model != PRESETS[preset].model  # else the label stands in for it
    assert usage.models == [model if reported or label is None else label]


@pytest.mark.parametrize("preset", sorted(PRESET_CASES))
async def test_each_preset_runs_its_tool_and_reports_usage_and_cost(
    agents: Agents, client: HubClient, preset: Any
) -> None:
    await agents.start(f"{preset}-1", preset=preset)
    status = await client.wait(await client.submit_task("Port it", skills={"python": 0.5}), WAIT)
    assert_preset_result(preset, status, "Port it")


async def test_a_tool_that_reports_an_error_in_its_json_fails_the_attempt(
    agents: Agents, client: HubClient
) -> None:
    await agents.start("claude-1", preset="claude")
    task_id = await client.submit_task(
        "Refuse", skills={"python": 0.5}, instructions="PLEASE FAIL", max_attempts=1
    )
    status = await client.wait(task_id, WAIT)
    assert status.state == "failed"
    assert "Claude Code reported an error: the model refused" in (status.error or "")
    assert status.usage.cost == pytest.approx(0.0123)  # spent all the same


async def test_with_a_repo_each_task_runs_in_a_worktree_and_its_work_stays_on_a_branch(
    agents: Agents, client: HubClient, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    await sh(*git, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("a repo\n")
    await sh(*git, "add", "-A")
    await sh(*git, "commit", "-q", "-m", "first")
    await agents.start("claude-1", preset="claude", repo=repo)
    task_id = await client.submit_task("Edit the repo", skills={"python": 0.5})
    status = await client.wait(task_id, WAIT)
    assert status.state == "done", status.error
    branch = f"clawhub/{task_id}-1"
    shown = await sh(*git, "show", f"{branch}:ANSWER.md")
    assert shown.stdout == "claude did: Edit the repo\n"
    worktrees = (await sh(*git, "worktree", "list")).stdout
    assert len(worktrees.splitlines()) == 1  # the task's worktree is gone; its branch stays
    assert not (repo / "ANSWER.md").exists()  # the main checkout is untouched


def test_a_failed_run_names_the_exit_and_the_last_lines_of_stderr() -> None:
    exc = CommandFailed("x", "x exited with code 3; ...", 3, "boom")
    assert exc.returncode == 3 and exc.stderr == "boom" and exc.command == "x"
    assert json.dumps(exc.args)  # plain data, fit for an attempt's reason
