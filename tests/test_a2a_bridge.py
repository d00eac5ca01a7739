"""The A2A bridge, inward: a real A2A agent (the a2a-sdk server under uvicorn, in its own
process: ``tests/a2a_agent_proc.py``) joins a real hub (nats-server, SQLite) as a worker
through ``clawhub.bridges.a2a.A2ABridge`` and the a2a-sdk client, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from conftest import MakeHub, server_settings
from test_docs import ROOT, blocks, ctrl_c, log_reader, wait_for
from typer.testing import CliRunner

from agents_sdk import Agent, HubClient, RequestRefused, TaskContext
from clawhub.bridges.a2a import A2ABridge
from clawhub.bridges.a2a_config import TOKEN_NOTE, A2AAgentEntry
from clawhub.cli.app import app
from clawhub.cli.bridge import start_a2a_bridges, stop_bridges
from clawhub.gateway import HubProcess
from clawhub.runtime import Hub
from clawhub.store.store import Store, TokenRow
from protocols import AgentInfo, Event, TaskSpec, TaskState

AGENT = Path(__file__).with_name("a2a_agent_proc.py")
WAIT = 90.0  # the machine is loaded: waits are generous, never timed assertions

Remote = Callable[..., Awaitable[tuple[str, asyncio.subprocess.Process]]]


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    """Start ``tests/a2a_agent_proc.py`` with the given arguments: ``(base url, process)``."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> tuple[str, asyncio.subprocess.Process]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(AGENT),
            *args,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.startswith(b"READY "), line
        return line.split()[1].decode(), proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def bridged(url: str, hub: Hub, **options: object) -> AsyncIterator[A2ABridge]:
    options = {"poll_interval": 0.3, "lost_after": 2, **options}
    bridge = A2ABridge(url, hub_url=hub.url, **options)  # type: ignore[arg-type]
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


def spare_agent() -> Agent:
    """An SDK agent with the same skill: where reassigned work goes."""
    agent = Agent("spare", id="spare", skills={"text": 0.5})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(1.0, "done")
        return {"by": "spare"}

    return agent


async def truthy(value: Awaitable[object]) -> bool:
    return bool(await value)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"no {what} within {WAIT}s"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def progress_lines(client: HubClient) -> AsyncIterator[dict[str, list[str]]]:
    """The progress lines of every task while inside (``task.progress`` events are
    published, not stored), by task id."""
    lines: dict[str, list[str]] = {}

    async def listen() -> None:
        async for event in client.events(["task.progress"]):
            lines.setdefault(event.task_id or "", []).append(event.message)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.2)  # subscribed (the first events come after a submit anyway)
    try:
        yield lines
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def running_on(client: HubClient, task_id: str, agent_id: str) -> bool:
    status = await client.task(task_id)
    return status.state is TaskState.RUNNING and status.assigned_to == agent_id


# -- the happy paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "polling"])
async def test_a_task_runs_through_an_a2a_agent_to_done(
    make_hub: MakeHub, remote: Remote, streaming: bool
) -> None:
    hub = await make_hub()
    url, _ = await remote("--name", "Echo Agent", *([] if streaming else ["--no-streaming"]))
    async with bridged(url, hub, skills={"text": 0.8}, model="none") as bridge:
        assert bridge.agent_id == "echo-agent"  # the card's name, as an id
        async with HubClient(hub.url) as client, progress_lines(client) as progress:
            [info] = await client.agents()
            assert info.profile.name == "Echo Agent"
            assert info.profile.skills == {"text": 0.8}
            assert "provider:Test Org" in info.profile.labels
            [tid] = await client.submit(
                TaskSpec(
                    title="Shout",
                    instructions="echo it",
                    skills={"text": 0.5},
                    input={"text": "hello"},
                )
            )
            status = await client.wait(tid, timeout=WAIT)
            assert status.state is TaskState.DONE, status
            assert status.history[-1].agent_id == "echo-agent"
            assert status.output == {
                "echo": "Shout\n\necho it",
                "data": {"input": {"text": "hello"}},
            }
            lines = progress[tid]
            assert lines[-1] == "a2a completed", lines
            if streaming:  # every status on the stream; polling sees only what it reads
                assert "a2a working: working on it" in lines, lines


async def test_a_streamed_task_reports_each_status_and_artifact_chunk(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "slow", "--steps", "3")
    async with bridged(url, hub), HubClient(hub.url) as client, progress_lines(client) as progress:
        [tid] = await client.submit(TaskSpec(title="story", skills={"text": 0.5}))
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.DONE, status
        assert status.output == {
            "text": "part 1;part 2;part 3;",
            "artifacts": [{"name": "story", "parts": [{"text": f"part {i};"} for i in (1, 2, 3)]}],
        }
        lines = progress[tid]
        for step in (1, 2, 3):
            assert f"a2a working: step {step}" in lines, lines
        assert lines.count("a2a artifact story") == 3, lines


async def test_input_required_asks_in_the_chat_and_the_reply_goes_back(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "ask", "--question", "Which language?")
    async with bridged(url, hub) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="greet", skills={"text": 0.5}))

        async def asked() -> bool:
            chat = [e for e in await client.history(task_id=tid) if e.kind == "chat.message"]
            return any("Which language?" in e.message for e in chat)

        await until(asked, "question in the chat")
        status = await client.task(tid)
        assert status.state is TaskState.RUNNING  # the attempt is held while it waits
        await client.chat("ann", "French, please", task_id=tid)
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.DONE, status
        assert status.output == {"answer": "French, please"}
        [question] = [
            e
            for e in await client.history(task_id=tid)
            if e.kind == "chat.message" and e.agent_id == bridge.agent_id
        ]
        assert f"clawhub chat --task {tid}" in question.message


async def test_a_task_the_remote_fails_is_an_error_result(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "fail")
    async with bridged(url, hub), HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="x", skills={"text": 0.5}, max_attempts=1))
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.FAILED, status
        assert "ended failed: a2a failed: cannot do this" in (status.error or ""), status.error


# -- what A2A lacks: liveness, stalls, fencing --------------------------------------------------


async def test_the_agent_killed_mid_task_is_lost_and_its_task_reassigned(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub(stall_timeout=120.0)  # the loss, not a stall, ends the attempt
    url, proc = await remote("--mode", "hang", "--hang-seconds", "600")
    spare = spare_agent()
    async with bridged(url, hub) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="long", skills={"text": 0.5}))
        await until(lambda: running_on(client, tid, bridge.agent_id), "task running remotely")
        proc.kill()
        await proc.wait()
        await spare.start(hub.url)
        try:
            status = await client.wait(tid, timeout=WAIT)
        finally:
            await spare.stop()
        assert status.state is TaskState.DONE, status
        assert status.output == {"by": "spare"}
        assert [h.outcome for h in status.history] == ["lost", "done"]
        assert status.history[0].agent_id == bridge.agent_id
        await hub.durable()
        kinds = [
            e.kind
            for e in hub.store.events(hub.group, kind="agent.")
            if e.agent_id == bridge.agent_id
        ]
        assert "agent.lost" in kinds and "agent.left" not in kinds
        assert not bridge.online

        # the agent comes back on the same address: the participant registers again
        port = url.rsplit(":", 1)[1]
        await remote("--mode", "answer", "--port", port)

        async def online() -> bool:
            agents: list[AgentInfo] = await client.agents()
            return any(a.profile.id == bridge.agent_id and a.state == "online" for a in agents)

        await until(online, "the bridged agent back online")
        [again] = await client.submit(TaskSpec(title="again", skills={"text": 0.5}))
        status = await client.wait(again, timeout=WAIT)
        assert status.state is TaskState.DONE and status.history[-1].agent_id == bridge.agent_id


async def test_a_silent_agent_is_stalled_reassigned_and_its_late_answer_refused(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub(stall_timeout=4.0)
    url, _ = await remote("--mode", "hang", "--hang-seconds", "12")
    spare = spare_agent()
    async with (
        bridged(url, hub, cancel_timeout=WAIT) as bridge,
        HubClient(hub.url) as client,
        progress_lines(client) as progress,
    ):
        [tid] = await client.submit(TaskSpec(title="slow", skills={"text": 0.5}))

        async def working() -> bool:  # the remote has the task (it may be stalled already)
            return "a2a working: working on it" in progress.get(tid, [])

        await until(working, "the remote task under way")
        await spare.start(hub.url)
        try:
            status = await client.wait(tid, timeout=WAIT)

            async def refused() -> list[Event]:
                return [
                    e
                    for e in await client.history(kind="message.refused")
                    if e.agent_id == bridge.agent_id and tid in e.message
                ]

            await until(lambda: truthy(refused()), "the late answer refused")
        finally:
            await spare.stop()
        assert status.state is TaskState.DONE, status
        assert status.output == {"by": "spare"}
        assert [h.outcome for h in status.history] == ["stalled", "done"]
        [late] = await refused()
        assert late.data.get("code") == "stale_attempt", late
        assert "attempt 1 of task" in late.message and "was stalled" in late.message, late
        assert (await client.task(tid)).output == {"by": "spare"}  # the late answer changed nothing


async def test_an_agent_that_answers_garbage_gets_an_error_result(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--garbage-rpc")
    async with bridged(url, hub) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="x", skills={"text": 0.5}, max_attempts=1))
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.FAILED, status
        assert "the A2A agent did not take the task" in (status.error or ""), status.error
        assert bridge.online  # its card still answers: a bad answer is not a loss
        [error] = await client.history(task_id=tid, kind="task.error")
        assert error.agent_id == bridge.agent_id


async def test_a_stopping_bridge_cancels_the_remote_task(make_hub: MakeHub, remote: Remote) -> None:
    hub = await make_hub()
    url, proc = await remote("--mode", "slow", "--steps", "1000")
    bridge = A2ABridge(url, hub_url=hub.url, poll_interval=0.3)
    await bridge.start()
    try:
        async with HubClient(hub.url) as client, progress_lines(client) as progress:
            [tid] = await client.submit(TaskSpec(title="endless", skills={"text": 0.5}))

            async def stepping() -> bool:
                return "a2a working: step 1" in progress.get(tid, [])

            await until(stepping, "the remote task under way")
    finally:
        await bridge.stop()
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
    assert line.startswith(b"CANCELED "), line


# -- bad input -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_card_url_that_is_no_card_or_unreachable_fails_clearly(remote: Remote) -> None:
    runner = CliRunner()
    dead = f"http://127.0.0.1:{free_port()}"
    bad, _ = await remote("--garbage")
    for url, words in ((dead, "no A2A agent card at"), (bad, "is not a usable A2A agent card")):
        result = await asyncio.to_thread(
            runner.invoke, app, ["bridge", "a2a", url, "--url", "nats://127.0.0.1:1"]
        )
        said = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 1, result.output
        assert said.startswith("error: ") and words in said, said
        assert "Traceback" not in result.output


async def test_a_token_for_another_participant_is_refused(
    hub_server: HubProcess, remote: Remote
) -> None:
    """The bridged agent acts only with its own credential: a token for another id is refused
    (exit 1, said plainly), and with the right one it joins."""
    url, _ = await remote()
    made, _ = server_token(hub_server, "someone-else")
    runner = CliRunner()
    argv = ["bridge", "a2a", url, "--url", hub_server.url, "--group", "alpha", "--token", made]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "forbidden" in said and "may act only as someone-else" in said, said
    good, _ = server_token(hub_server, "echo-agent")
    bridge = A2ABridge(url, hub_url=hub_server.url, group="alpha", token=good)
    await bridge.start()
    try:
        async with HubClient(hub_server.url, "alpha", token=good) as client:
            assert [a.profile.id for a in await client.agents()] == ["echo-agent"]
            refused = await client.history(kind="message.refused")
            assert any(e.data.get("code") == "forbidden" for e in refused), refused
    finally:
        await bridge.stop()


def server_token(server: HubProcess, agent_id: str) -> tuple[str, object]:
    return server.tokens.create("alpha", "agent", agent_id)  # type: ignore[no-any-return]


# -- clawhub up: each bridged agent with an agent token of its own ----------------------------


def bridge_tokens(server: HubProcess) -> list[TokenRow]:
    return [r for r in server.tokens.rows("alpha") if r.note == TOKEN_NOTE]


async def test_up_bridges_each_agent_with_an_agent_token_of_its_own(
    tmp_path: Path, sqlite_store: Store, remote: Remote
) -> None:
    """``clawhub up --a2a-agent`` / ``--a2a-config`` with auth: the hub makes an agent token
    bound to the bridged participant's id (not its admin token), the hub holds it to that id,
    a task runs through it to done, and the next start reuses the token; an entry's own
    token is used as given."""
    url, _ = await remote("--name", "Echo Agent")
    settings = server_settings(tmp_path / "server")
    server = HubProcess(settings, ["alpha"], store=sqlite_store)
    await server.start()
    given, _ = server.tokens.create("alpha", "agent", "echo-two")
    entries = [
        A2AAgentEntry(url=url, skills={"text": 0.8}),
        A2AAgentEntry(url=url, id="echo-two", skills={"other": 0.5}, token=given),
    ]
    try:
        bridges = await start_a2a_bridges(entries, server, "alpha")
        try:
            made, two = bridges
            assert (made.agent_id, two.agent_id, two.token) == ("echo-agent", "echo-two", given)
            assert made.token is not None and made.token != server.admin_tokens["alpha"]
            who = server.tokens.verify(made.token)
            assert (who.role, who.agent_id) == ("agent", "echo-agent")
            [row] = bridge_tokens(server)
            agents = server.hubs["alpha"].board.state.agents
            assert agents["echo-agent"].credential == row.id == who.token_id
            assert agents["echo-two"].credential == given.split(".")[0]
            async with HubClient(server.url, "alpha", token=made.token) as own:
                with pytest.raises(RequestRefused, match="an agent may speak only as itself"):
                    await own.chat("echo-two", "in another's name")
            admin = server.admin_tokens["alpha"]
            async with HubClient(server.url, "alpha", token=admin) as client:
                [tid] = await client.submit(
                    TaskSpec(title="Shout", skills={"text": 0.5}, input={"text": "hi"})
                )
                status = await client.wait(tid, timeout=WAIT)
            assert status.state is TaskState.DONE, status
            assert status.history[-1].agent_id == "echo-agent"
        finally:
            await stop_bridges(bridges)
    finally:
        await server.stop()
    assert (settings.data_dir / "local-tokens.json").stat().st_mode & 0o077 == 0
    again = HubProcess(settings, ["alpha"], store=sqlite_store)  # the next start
    await again.start()
    try:
        [bridge] = await start_a2a_bridges(entries[:1], again, "alpha")
        await stop_bridges([bridge])
        assert bridge.token == made.token
        assert [r.id for r in bridge_tokens(again)] == [row.id]
        again.tokens.revoke(row.id)  # a revoked one is replaced, not reused
        [bridge] = await start_a2a_bridges(entries[:1], again, "alpha")
        await stop_bridges([bridge])
        assert bridge.token not in (None, made.token)
        assert len(bridge_tokens(again)) == 2
    finally:
        await again.stop()


BAD_CONFIGS = {
    "not-toml": ("[[agent]\nurl = ", "is not TOML"),
    "no-url": ('[[agent]]\nid = "x"\n', "agent 1: url: Field required"),
    "level": (
        '[[agent]]\nurl = "http://a"\n[[agent]]\nurl = "http://b"\nskills = { text = 1.5 }\n',
        "agent 2: skills.text: Input should be less than or equal to 1",
    ),
    "unknown-key": ('[[agent]]\nurl = "http://a"\nskill = { text = 0.5 }\n', "agent 1: skill:"),
}


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_a2a_config_is_one_clear_error_at_start(tmp_path: Path, case: str, how: str) -> None:
    text, words = BAD_CONFIGS[case]
    config = tmp_path / "bridges.toml"
    config.write_text(text)
    data = tmp_path / "data"
    argv = ["up", "--data-dir", str(data), "--port", "0", "--gateway-port", "0"]
    env = {"CLAWHUB_A2A_CONFIG": str(config)} if how == "env" else {}
    if how == "flag":
        argv += ["--a2a-config", str(config)]
    result = CliRunner().invoke(app, argv, env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert said.startswith(f"error: the A2A config {config}") and words in said, said
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (data / "hub.json").exists()  # nothing started


# -- the docs page, as pasted ------------------------------------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "a2a-agents.md"


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder laid out like the repository (``.venv``, ``examples``) and an environment
    with a fresh HOME and no CLAWHUB_* settings, as a newcomer has."""
    work = tmp_path / "clawhub"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "home").mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    return work, {**clean, "HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def page_steps(port: int) -> list[tuple[str, str, str]]:
    """``(marker, code, ready-or-expect text)`` of the page's marked bash blocks, with the
    agent's port 9999 replaced by a free one."""
    steps = []
    for block in blocks(PAGE):
        if (block.marker and block.marker[0] in ("walkthrough", "a2a-up")) or (
            block.lang == "bash" and "--a2a-agent" in block.code
        ):
            spec = block.marker[1] if block.marker else ""
            text = re.search(r'(?:ready when|expect) "([^"]+)"', spec)
            assert block.marker and text, f"{block.where}: no marker with a ready/expect text"
            kind = "background" if "keeps running" in spec or "ready when" in spec else "run"
            steps.append((kind, block.code.replace("9999", str(port)), text.group(1)))
    return steps


@contextlib.contextmanager
def background(code: str, cwd: Path, env: dict[str, str], ready: str) -> Iterator[Path]:
    """Run one block in its own shell, as in its own terminal, until Ctrl-C at the end."""
    log = cwd.parent / f"step-{abs(hash(code))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    try:
        wait_for(ready, log_reader(log), proc, WAIT)
        yield log
    finally:
        code_ = ctrl_c(proc)
    assert code_ == 0, log.read_text()


def run_block(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-e", "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=WAIT * 2,
        check=False,
    )
    assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_docs_page_runs_as_pasted(home: tuple[Path, dict[str, str]]) -> None:
    """docs/a2a-agents.md: hub, A2A agent, bridge (with its own agent token), a task done by
    the A2A agent; then the same through ``clawhub up --a2a-agent``, and again through
    ``clawhub up --a2a-config bridges.toml``, which reuses the agent token the first made."""
    cwd, env = home
    port = free_port()
    (hub, agent, bridge, task, up, up_file, tokens) = page_steps(port)
    assert [s[0] for s in (hub, agent, bridge, task, up, up_file, tokens)] == [
        *["background"] * 3,
        "run",
        *["background"] * 2,
        "run",
    ]
    assert "token create --role agent --agent-id shouter" in bridge[1]
    [config] = [b for b in blocks(PAGE) if b.lang == "toml"]
    (cwd / "bridges.toml").write_text(config.code.replace("9999", str(port)))
    with background(agent[1], cwd, env, agent[2]):
        with (
            background(hub[1], cwd, env, hub[2]),
            background(bridge[1], cwd, env, bridge[2]) as log,
        ):
            assert "joined as shouter (skills text=0.9; streaming)" in log.read_text()
            out = run_block(task[1], cwd, env)
            assert task[2] in out and "#1 shouter: done" in out, out
        # the same agent, bridged by the hub's own process this time, twice
        for step, task_id in ((up, "shout2"), (up_file, "shout3")):
            with background(step[1], cwd, env, step[2]) as log:
                assert "joined as shouter" in log.read_text()
                again = task[1].replace("shout", task_id)
                out = run_block(again, cwd, env)
                assert task[2] in out and "#1 shouter: done" in out, out
    assert tokens[2] in run_block(tokens[1], cwd, env)
    listed = json.loads(run_block(tokens[1].strip() + " --json", cwd, env))
    made = [(t["role"], t["agent_id"], t["revoked_at"]) for t in listed if t["note"] == TOKEN_NOTE]
    assert made == [("agent", "shouter", None)]  # the second start reused the first's


# -- examples/a2a_agent.py: the page's A2A agent, bridged ------------------------------------

EXAMPLE = ROOT / "examples" / "a2a_agent.py"


async def test_the_example_a2a_agent_joins_through_the_bridge_and_does_a_task(
    make_hub: MakeHub,
) -> None:
    """``python examples/a2a_agent.py --port P`` then the bridge (docs/a2a-agents.md): the
    Shouter, which knows nothing of Claw Hub, is matched by its card's skill and shouts."""
    hub = await make_hub()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--port",
        str(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:

        async def serving() -> bool:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return True
            return False

        await until(serving, "example A2A agent on its port")
        async with bridged(url, hub, model="none") as bridge, HubClient(hub.url) as client:
            assert bridge.agent_id == "shouter"
            [info] = await client.agents()
            assert info.profile.name == "Shouter"
            assert "text" in info.profile.skills
            [tid] = await client.submit(
                TaskSpec(title="Shout", skills={"text": 0.1}, input={"text": "hello"})
            )
            status = await client.wait(tid, timeout=WAIT)
            assert status.state is TaskState.DONE, status
            assert status.output == {"shout": "HELLO"}, status.output
    finally:
        proc.kill()
        await proc.wait()
