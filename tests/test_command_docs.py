"""docs/bring-your-own-agent.md as a newcomer uses it: every config file on the page loads,
and the page's script, its command line and its Claude Code config run as real processes
(`clawhub agent run`, the stand-ins of tests/bin first on PATH) against a real hub that
requires tokens, each agent with a token of its own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents_sdk import CommandAgent, HubClient, load_config
from agents_sdk.presets import PRESETS
from clawhub.gateway import HubProcess

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "bring-your-own-agent.md"
BIN = Path(__file__).resolve().parent / "bin"
VENV_BIN = Path(sys.executable).parent
WAIT = 120.0


def marked(kind: str) -> dict[str, str]:
    """The code blocks of the page under ``<!-- KIND: NAME -->``, by name."""
    pattern = rf"<!-- {kind}: (\S+) -->\n```\w+\n(.*?)```"
    return dict(re.findall(pattern, PAGE.read_text(), flags=re.S))


CONFIGS = marked("agent-config")


def test_the_page_has_one_config_per_preset() -> None:
    assert set(CONFIGS) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(CONFIGS))
def test_every_config_on_the_page_loads(preset: str, tmp_path: Path) -> None:
    file = tmp_path / f"{preset}.toml"
    file.write_text(CONFIGS[preset])
    config = load_config(file)
    assert config.preset == preset and config.skills and config.id
    assert config.argv()[: len(PRESETS[preset].argv)] == list(PRESETS[preset].argv)
    agent = CommandAgent.from_config(config)
    assert agent.id == config.id and agent.profile.skills == config.skills


def test_a_bad_config_names_the_key(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text('preset = "claude"\ncapacty = 2\n')
    with pytest.raises(ValueError, match="capacty: Extra inputs are not permitted"):
        load_config(file)


class Running:
    """A process group started from a shell line, its stderr in a file."""

    def __init__(self, line: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = log.open("wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", line],
            cwd=cwd,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while text not in self.text():
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {text!r}:\n{self.text()}"
            await asyncio.sleep(0.1)

    async def interrupt(self) -> int:
        """Ctrl-C, as in a terminal: SIGINT to the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        code = await asyncio.to_thread(self.proc.wait, WAIT)
        self.out.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(WAIT)
        self.out.close()


@pytest.fixture
def env(hub_server: HubProcess, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A shell's environment that finds the test's hub (group alpha) and its store."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    yield {
        **clean,
        "PATH": f"{VENV_BIN}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CLAWHUB_NATS_URL": hub_server.url,
        "CLAWHUB_GROUP": "alpha",
        "CLAWHUB_DATA_DIR": str(tmp_path / "data"),
        "CLAWHUB_STORE_URL": hub_server.store.url,  # where `clawhub token create` writes
    }


async def test_the_script_and_its_command_line_run_as_the_page_shows(
    hub_server: HubProcess, env: dict[str, str], tmp_path: Path
) -> None:
    [(script_name, script)] = marked("agent-script").items()
    [(name, line)] = marked("agent-run").items()
    assert name == script_name
    work = tmp_path / "work"
    work.mkdir()
    (work / script_name).write_text(script)
    (work / script_name).chmod(0o755)
    agent = Running(line, work, env, tmp_path / "agent.log")
    try:
        await agent.wait_for("registered with hub")
        admin = hub_server.admin_tokens["alpha"]
        async with HubClient(hub_server.url, group="alpha", token=admin, timeout=30) as client:
            task_id = await client.submit_task("Count", skills={"text": 0.5})
            status = await client.wait(task_id, WAIT)
        assert status.state == "done", status.error
        assert status.output == "reading the task\nthe task says: Count"
        assert [a.agent_id for a in status.history] == ["counter"]
        assert await agent.interrupt() == 0, agent.text()
    finally:
        agent.kill()


async def test_the_claude_config_runs_with_its_stand_in(
    hub_server: HubProcess, env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        await asyncio.to_thread(subprocess.run, [*git, *args], check=True)
    (repo / "coder.toml").write_text(CONFIGS["claude"])
    token, _ = await hub_server.create_token("alpha", "agent", "coder")
    agent = Running(
        "clawhub agent run --config coder.toml",
        repo,
        {**env, "CLAWHUB_TOKEN": token},
        tmp_path / "agent.log",
    )
    try:
        await agent.wait_for("registered with hub")
        admin = hub_server.admin_tokens["alpha"]
        async with HubClient(hub_server.url, group="alpha", token=admin, timeout=30) as client:
            task_id = await client.submit_task("Fix the bug", skills={"python": 0.5})
            status = await client.wait(task_id, WAIT)
        assert status.state == "done", status.error
        assert status.output == "claude did: Fix the bug"
        assert status.usage.cost == pytest.approx(0.0123)
        shown = await asyncio.to_thread(
            subprocess.run,
            [*git, "show", f"clawhub/{task_id}-1:ANSWER.md"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shown.stdout == "claude did: Fix the bug\n"
        assert await agent.interrupt() == 0, agent.text()
    finally:
        agent.kill()
