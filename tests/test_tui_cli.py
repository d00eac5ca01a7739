"""``clawhub tui`` and ``python -m tui``: the real program in a pseudo-terminal against a real
hub, the model's pure derivations, and the key table of docs/humans.md."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tui_sample import sample_model

from agents_sdk import HubClient
from clawhub.runtime import Hub
from clawhub.store import Store
from protocols import AgentInfo, AgentProfile, AttemptInfo, Event, TaskSpec, TaskState, TaskStatus
from tui import KEYMAP, ClawTui, GroupModel, human_id
from tui.model import parse_skills, why_not
from tui.session import STOP_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
DEAD_URL = "nats://127.0.0.1:1"
#: The program ends within this many seconds of a quit or a hang-up (start-up of Python and
#: the bounded leave included).
QUIT_WITHIN = STOP_TIMEOUT + 10.0


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The ``hub`` fixture on SQLite only."""
    return sqlite_store


def _env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**clean, "HOME": str(home), "TERM": "xterm-256color"}


async def _agents(url: str) -> list[AgentInfo]:
    async with HubClient(url) as client:
        return await client.agents()


async def _joined(url: str, agent_id: str) -> list[AgentInfo]:
    """The participant ``agent_id`` once it is listed (the app may draw before it joined)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (found := [a for a in await _agents(url) if a.profile.id == agent_id]):
        assert loop.time() < deadline, f"{agent_id} never joined"
        await asyncio.sleep(0.1)
    return found


class Terminal:
    """``clawhub tui`` running in a pseudo-terminal: what it drew, and the keyboard."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc = proc
        self.master: int | None = master
        self.screen = bytearray()

    def text(self) -> str:
        return self.screen.decode(errors="replace")

    def type(self, keys: bytes) -> None:
        assert self.master is not None
        os.write(self.master, keys)

    def hang_up(self) -> None:
        """Close the terminal window: the pty goes away and its processes get SIGHUP."""
        assert self.master is not None
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        self.master = None
        os.killpg(self.proc.pid, signal.SIGHUP)


@asynccontextmanager
async def tui_in_a_pty(
    url: str, tmp_path: Path, *args: str, program: tuple[str, ...] = ("clawhub.cli", "tui")
) -> AsyncIterator[Terminal]:
    """Run ``python -m PROGRAM --url URL ARGS`` in a 140x40 pty until it has drawn."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *program,
        "--url",
        url,
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=_env(tmp_path),
        start_new_session=True,
    )
    os.close(slave)
    term = Terminal(proc, master)
    loop = asyncio.get_running_loop()

    def read() -> None:
        try:
            term.screen.extend(os.read(master, 65536))
        except OSError:  # the child closed the terminal
            loop.remove_reader(master)

    loop.add_reader(master, read)
    try:
        deadline = loop.time() + 30
        while b"Tasks" not in term.screen:  # the app draws before it reads keys
            assert proc.returncode is None, term.text()
            assert loop.time() < deadline, "it never drew:\n" + term.text()
            await asyncio.sleep(0.1)
        yield term
    finally:
        if term.master is not None:
            loop.remove_reader(term.master)
            os.close(term.master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_clawhub_tui_joins_as_a_human_and_leaves_on_q(hub: Hub, tmp_path: Path) -> None:
    """The real program in a pseudo-terminal: Bob shows up in the group as a human with his
    skills; ``q`` quits, and he leaves the group."""
    async with tui_in_a_pty(
        hub.url, tmp_path, "--name", "Bob", "--skills", "review=0.8,writing"
    ) as term:
        [bob] = await _joined(hub.url, "bob")
        assert bob.profile.kind == "human"
        assert bob.profile.skills == {"review": 0.8, "writing": 0.5}
        term.type(b"q")
        assert await asyncio.wait_for(term.proc.wait(), 20) == 0
        assert "bob" not in {a.profile.id for a in await _agents(hub.url)}


@pytest.mark.parametrize("program", [("tui",), ("clawhub.cli", "tui")], ids=["tui", "clawhub-tui"])
async def test_closing_the_terminal_is_leaving_not_a_crash(
    hub: Hub, tmp_path: Path, program: tuple[str, ...]
) -> None:
    """A closed terminal window (SIGHUP) used to kill the program: the hub saw the
    connection drop, marked Bob *lost* and halved his reliability. Now he leaves, whether
    the TUI runs alone or under ``clawhub tui`` (which passes the signal on)."""
    async with tui_in_a_pty(hub.url, tmp_path, "--name", "Bob", program=program) as term:
        [bob] = await _joined(hub.url, "bob")
        term.hang_up()
        assert await asyncio.wait_for(term.proc.wait(), QUIT_WITHIN) == 0
    async with HubClient(hub.url) as client:
        kinds = [e.kind for e in await client.history(kind="agent.") if e.agent_id == "bob"]
        [after] = [a for a in await client.agents(include_gone=True) if a.profile.id == "bob"]
    # a starved machine may have Bob miss beats (away, then back) first: never lost
    assert kinds[0] == "agent.registered" and kinds[-1] == "agent.left", kinds
    assert set(kinds[1:-1]) <= {"agent.away", "agent.back"}, kinds
    assert (after.state, after.reliability) == ("left", bob.reliability)


def test_clawhub_tui_with_a_dead_url_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clawhub.cli", "tui", "--url", DEAD_URL, "--name", "Bob"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"cannot join the group at {DEAD_URL}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_clawhub_tui_without_a_hub_says_how_to_start_one(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clawhub.cli", "tui"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "clawhub up" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skills", "review=high"], "not a number"),
        (["--skills", "review=2"], "within 0..1"),
        (["--id", "has space"], "--id"),
        (["--capacity", "0"], "--capacity"),
    ],
)
def test_python_m_tui_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tui", "--url", DEAD_URL, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


# -- the model's pure parts -------------------------------------------------------------------


def test_parse_skills() -> None:
    assert parse_skills("Python=0.8, review ;writing=1") == {
        "python": 0.8,
        "review": 0.5,
        "writing": 1.0,
    }
    assert parse_skills("") == {}


def test_human_id_is_stable_and_valid() -> None:
    assert human_id("Ann Lee") == "ann-lee"
    assert human_id("  ") == "human"


def _agent(id: str, *, state: str = "online", load: int = 0) -> AgentInfo:
    return AgentInfo.model_validate(
        {
            "profile": AgentProfile(id=id, name=id.upper()),
            "state": state,
            "load": load,
            "reliability": 1.0,
            "last_seen": 990.0,
        }
    )


def _task(id: str, state: TaskState, history: list[AttemptInfo] | None = None) -> TaskStatus:
    return TaskStatus(
        id=id,
        spec=TaskSpec(id=id, title=f"title of {id}", skills={"python": 0.5}),
        state=state,
        attempt=len(history or []),
        failures=0,
        created_at=900.0,
        updated_at=950.0,
        history=history or [],
    )


def test_agent_activity() -> None:
    model = GroupModel(clock=lambda: 1000.0)
    model.set_agents(
        [
            _agent("a"),
            _agent("b", load=1),
            _agent("c"),
            _agent("d", state="lost"),
            _agent("e", state="away"),
        ]
    )
    stalled = AttemptInfo(
        attempt=1, agent_id="c", outcome="stalled", offered_at=800.0, ended_at=950.0
    )
    model.set_tasks([_task("t1", TaskState.READY, [stalled])])
    activity = {a.profile.id: model.activity(a) for a in model.agents.values()}
    assert activity == {"a": "idle", "b": "busy", "c": "stalled", "d": "lost", "e": "away"}
    assert model.heartbeat_age(model.agents["a"]) == 10.0
    model.clock = lambda: 950.0 + 3600  # long ago: no longer shown as stalled
    assert model.activity(model.agents["c"]) == "idle"


def test_board_orders_by_state_and_filters() -> None:
    model = GroupModel(clock=lambda: 1000.0)
    model.set_tasks(
        [
            _task("done-1", TaskState.DONE),
            _task("ready-1", TaskState.READY),
            _task("human-1", TaskState.NEEDS_HUMAN),
        ]
    )
    assert [t.id for t in model.board()] == ["human-1", "ready-1", "done-1"]
    assert [t.id for t in model.board(frozenset({TaskState.DONE}))] == ["done-1"]
    assert [t.id for t in model.board(text="READY")] == ["ready-1"]
    assert [t.id for t in model.waiting_for_humans()] == ["human-1"]
    assert list(model.counts().values()) == [1, 1, 1]


def test_events_are_kept_once_and_chat_lines_join_the_chat() -> None:
    model = GroupModel()
    chat = Event(seq=7, ts=1.0, kind="chat.message", agent_id="ann", message="hello")
    assert model.add_event(chat)
    assert not model.add_event(chat)  # the same stored event from history and the stream
    assert [(c.sender, c.text) for c in model.chat] == [("ann", "hello")]
    assert model.events_added == 1 and model.chat_added == 1


def test_docs_list_every_key() -> None:
    page = (ROOT / "docs" / "humans.md").read_text()
    for where, key, what in KEYMAP:
        assert f"| {where} | `{key}` | {what} |" in page, (where, key)


async def test_a_dimmed_key_says_why() -> None:
    """On a running task, `a` (approve) cannot apply: the footer dims it and a press explains."""
    app = ClawTui(sample_model())
    async with app.run_test(size=(140, 36), notifications=True) as pilot:
        assert app.select_task("t-api")
        assert app.check_action("approve", ()) is None
        assert app.check_action("cancel_task", ()) is True
        await pilot.press("a")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert messages == ["t-api is running: only a result waiting for a human is decided"]
        assert app.screen is app.screen_stack[0]  # no form opened


def test_why_not_explains_each_action() -> None:
    model = GroupModel(clock=lambda: 1000.0)
    model.set_agents([_agent("a"), _agent("d", state="lost")])
    model.set_tasks([_task("r", TaskState.READY), _task("h", TaskState.NEEDS_HUMAN)])
    assert why_not(model, "approve", task_id="h") is None
    assert why_not(model, "approve", task_id="r") == (
        "r is ready: only a result waiting for a human is decided"
    )
    assert why_not(model, "take", task_id="r") is None
    assert why_not(model, "reassign", task_id="h") == "h is needs_human: nothing to reassign"
    assert why_not(model, "submit_result", task_id="r") == "select one of your work items (tab 3)"
    assert why_not(model, "pause_agent", agent_id="d") == "D is lost"
    assert why_not(model, "pause_agent") == "select an agent first (tab 2)"
    assert why_not(model, "approve_plan", goal_id="nope") == "select a goal first (tab 6)"
