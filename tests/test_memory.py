"""An agent's persistent memory: a real SQLite file that survives restarts (of the Memory
object, of the agent, of the process), used from sync and async handlers on a real hub."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agents_sdk import Agent, HubClient, Memory, TaskContext
from agents_sdk.memory import AGENTS_DIR_ENV, default_data_dir
from agents_sdk.testing import run_task
from clawhub.runtime import Hub
from protocols import TaskSpec, TaskState


@pytest.fixture(params=[True, False], ids=["fts5", "word-overlap"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Memory:
    return Memory(tmp_path / "mem" / "memory.db", fts=request.param)


def test_nothing_touches_the_disk_before_first_use(tmp_path: Path) -> None:
    mem = Memory(tmp_path / "a" / "memory.db")
    assert not (tmp_path / "a").exists()
    assert mem.recall("x") is None
    assert (tmp_path / "a" / "memory.db").is_file()


def test_facts_round_trip(memory: Memory) -> None:
    assert memory.recall("missing", default={"d": 1}) == {"d": 1}
    memory.remember("user:lang", "Python")
    memory.remember("user:style", {"tabs": False, "width": 100})
    memory.remember("counter", 1)
    memory.remember("counter", 2)  # replaces
    assert memory.recall("counter") == 2
    assert memory.facts("user:") == {
        "user:lang": "Python",
        "user:style": {"tabs": False, "width": 100},
    }
    assert memory.forget("counter") is True
    assert memory.forget("counter") is False
    assert memory.recall("counter") is None
    memory.remember("100%_done", True)  # LIKE wildcards in a prefix are taken literally
    assert memory.facts("100%") == {"100%_done": True}
    assert memory.facts("1000") == {}
    with pytest.raises(ValueError):
        memory.remember("bad", float("nan"))


def test_search_finds_relevant_notes_best_first(memory: Memory) -> None:
    parser = memory.note("The CSV parser fails on quoted newlines; use csv.reader.", tags=["bug"])
    memory.note("Deploys go out on Tuesdays.", tags=["ops"])
    memory.note("The JSON parser is fine.", task_id="t-9")
    found = memory.search("why does the csv parser break on newlines?", limit=5)
    assert found[0].id == parser
    assert found[0].tags == ["bug"]
    assert found[0].score > 0
    assert "Deploys go out on Tuesdays." not in [n.text for n in found]
    assert [n.task_id for n in found if n.task_id] == ["t-9"]
    assert memory.search("CSV", limit=1)[0].id == parser  # case-insensitive
    assert memory.search("ops", limit=3)[0].text == "Deploys go out on Tuesdays."  # tags count
    assert memory.search("kubernetes") == []
    assert memory.search('"; DROP TABLE notes; --') == []  # query text is never SQL/FTS syntax
    assert memory.count() == 3
    assert [n.text for n in memory.notes(limit=2)] == [
        "The JSON parser is fine.",
        "Deploys go out on Tuesdays.",
    ]
    assert [n.id for n in memory.notes(tag="bug")] == [parser]
    assert memory.delete_note(parser) is True
    assert memory.search("csv") == []
    with pytest.raises(ValueError):
        memory.note("   ")


def test_full_text_is_used_when_sqlite_has_it(tmp_path: Path) -> None:
    assert Memory(tmp_path / "a.db").full_text is True  # this SQLite has FTS5
    assert Memory(tmp_path / "b.db", fts=False).full_text is False


def test_survives_reopening_and_a_new_process(memory: Memory) -> None:
    memory.remember("k", [1, 2, 3])
    memory.note("remember the milk", tags=["todo"])
    memory.close()
    again = Memory(memory.path, fts=memory.full_text)
    assert again.recall("k") == [1, 2, 3]
    code = (
        "import sys\n"
        "from agents_sdk import Memory\n"
        "m = Memory(sys.argv[1])\n"
        "print(m.recall('k'), [n.text for n in m.search('milk')])\n"
        "m.remember('from_child', 'yes')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(memory.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == "[1, 2, 3] ['remember the milk']"
    assert again.recall("from_child") == "yes"


def test_safe_from_many_threads(memory: Memory) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                memory.remember(f"t{n}:{i}", i)
                memory.note(f"thread {n} wrote note {i}")
                memory.search(f"thread {n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert memory.count() == 150
    assert len(memory.facts("t")) == 150


def test_default_data_dir_is_per_agent_and_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AGENTS_DIR_ENV, raising=False)
    assert default_data_dir("coder-1") == Path("~/.clawhub/agents/coder-1").expanduser()
    monkeypatch.setenv(AGENTS_DIR_ENV, str(tmp_path / "agents"))
    agent = Agent("coder", id="coder-1")
    assert agent.data_dir == tmp_path / "agents" / "coder-1"
    assert agent.memory.path == tmp_path / "agents" / "coder-1" / "memory.db"
    explicit = Agent("coder", id="coder-1", data_dir=tmp_path / "elsewhere")
    assert explicit.memory.path == tmp_path / "elsewhere" / "memory.db"


async def test_handlers_reach_memory_through_the_context(tmp_path: Path) -> None:
    agent = Agent("counter", id="counter-1", data_dir=tmp_path)

    @agent.handler
    def count(ctx: TaskContext) -> object:  # a sync handler: runs in a worker thread
        seen = ctx.memory.recall("seen", 0)
        assert isinstance(seen, int)
        ctx.memory.remember("seen", seen + 1)
        return seen + 1

    assert [(await run_task(agent)).output for _ in range(3)] == [1, 2, 3]


# -- on a real hub: the memory outlives the agent ---------------------------------------------


def _keeper(data_dir: Path) -> Agent:
    """A plain-code agent that stores what it is told and answers from what it stored."""
    agent = Agent("keeper", id="keeper-1", skills={"memo": 1.0}, data_dir=data_dir)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        data = ctx.input
        assert isinstance(data, dict)
        if "store" in data:
            ctx.memory.remember("secret", data["store"])
            ctx.memory.note(f"the user said: {data['store']}", task_id=ctx.task_id)
            return "stored"
        notes = ctx.memory.search(str(data["ask"]))
        return {"secret": ctx.memory.recall("secret"), "notes": [n.text for n in notes]}

    return agent


async def test_memory_survives_an_agent_restart_on_a_hub(hub: Hub, tmp_path: Path) -> None:
    data_dir = tmp_path / "keeper"
    async with HubClient(hub.url) as client:
        first = _keeper(data_dir)
        await first.start(hub.url)
        try:
            [tid] = await client.submit(
                [TaskSpec(title="store", skills={"memo": 0.5}, input={"store": "blue heron"})]
            )
            assert (await client.wait(tid, timeout=20)).output == "stored"
        finally:
            await first.stop()
        first.memory.close()

        second = _keeper(data_dir)  # a new process would do the same: same id, same dir
        assert second.memory is not first.memory
        await second.start(hub.url)
        try:
            [tid] = await client.submit(
                [TaskSpec(title="recall", skills={"memo": 0.5}, input={"ask": "heron"})]
            )
            status = await client.wait(tid, timeout=20)
        finally:
            await second.stop()
    assert status.state is TaskState.DONE, status.error
    assert status.output == {"secret": "blue heron", "notes": ["the user said: blue heron"]}
    await asyncio.sleep(0)
