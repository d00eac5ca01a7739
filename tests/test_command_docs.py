"""docs/bring-your-own-agent.md as a newcomer uses it: every config file on the page loads,
and the page's script, its command line, the config of each preset and the flags of
`clawhub agent run` run as real processes (the stand-ins of tests/bin first on PATH) against
a real hub that requires tokens, each agent with a token of its own."""

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
from test_command_agent import assert_preset_result

from agents_sdk import CommandAgent, HubClient, load_config
from agents_sdk.presets import PRESETS
from clawhub.cli.agent import build_config
from clawhub.gateway import HubProcess
from protocols import AgentInfo, TaskStatus

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


def git_repo(path: Path) -> list[str]:
    """A git repository with one commit at ``path``; the ``git -C path`` command line."""
    path.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(path)]
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run([*git, *args], check=True)
    return git


async def git_out(git: list[str], *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [*git, *args], capture_output=True, text=True, check=True
    )
    return done.stdout


async def run_one_task(
    hub_server: HubProcess, agent: Running, agent_id: str, title: str, skill: str
) -> tuple[AgentInfo, TaskStatus]:
    """Once ``agent`` registered: its entry in the group and a task run by it, to its end."""
    await agent.wait_for("registered with hub")
    admin = hub_server.admin_tokens["alpha"]
    async with HubClient(hub_server.url, group="alpha", token=admin, timeout=30) as client:
        [info] = [a for a in await client.agents() if a.profile.id == agent_id]
        status = await client.wait(await client.submit_task(title, skills={skill: 0.5}), WAIT)
    assert status.state == "done", status.error
    assert [a.agent_id for a in status.history] == [agent_id]
    return info, status


@pytest.mark.parametrize("preset", sorted(CONFIGS))
async def test_each_config_on_the_page_runs_with_its_stand_in(
    hub_server: HubProcess, env: dict[str, str], tmp_path: Path, preset: str
) -> None:
    text = CONFIGS[preset]
    name = re.match(r"# (\S+\.toml)", text)
    assert name, "each config on the page starts with its file's name"
    # run from a repository, as `repo = "."` wants
    git = await asyncio.to_thread(git_repo, tmp_path / "repo")
    file = tmp_path / "repo" / name[1]
    file.write_text(text)
    config = load_config(file)
    assert config.id is not None
    token, _ = await hub_server.create_token("alpha", "agent", config.id)
    agent = Running(
        f"clawhub agent run --config {name[1]}",
        tmp_path / "repo",
        {**env, "CLAWHUB_TOKEN": token},
        tmp_path / "agent.log",
    )
    try:
        skill = next(iter(config.skills))
        info, status = await run_one_task(hub_server, agent, config.id, "Fix the bug", skill)
        assert await agent.interrupt() == 0, agent.text()
    finally:
        agent.kill()
    profile = info.profile
    label = config.model_label or PRESETS[preset].model
    assert (profile.model, profile.device) == (label, config.device)
    assert (profile.capacity, profile.clearance) == (config.capacity, config.clearance)
    assert_preset_result(preset, status, "Fix the bug", config.model_label)
    if config.repo:  # the work stays on the attempt's branch of the repository
        branch = f"clawhub/{status.id}-1"
        assert (await git_out(git, "log", "--format=%s", "-1", branch)).startswith("clawhub: task")
    else:
        assert (await git_out(git, "branch", "--list", "clawhub/*")) == ""


async def test_the_run_flags_win_over_the_config_file(
    hub_server: HubProcess, env: dict[str, str], tmp_path: Path
) -> None:
    """Every flag of `clawhub agent run` that shapes the agent, on top of a config file that
    says otherwise: the profile the hub registered and the folder the task ran in show that
    the flags won (the skills merge: the flag's level, the file's other skills)."""
    git = await asyncio.to_thread(git_repo, tmp_path / "repo")
    runs = tmp_path / "runs"
    (tmp_path / "agent.toml").write_text(
        'id = "flagged"\npreset = "codex"\nskills = { python = 0.4, review = 0.6 }\n'
        'model_label = "from-the-file"\ndevice = "server"\ncapacity = 1\n'
        'workdir = "file-runs"\n'
    )
    token, _ = await hub_server.create_token("alpha", "agent", "flagged")
    line = (
        "clawhub agent run --config agent.toml --preset claude --skill python=0.9 "
        "--model-label anthropic/claude-opus-4-1 --device cloud --capacity 3 "
        f"--workdir {runs} --repo {tmp_path / 'repo'} --keep-workdirs"
    )
    agent = Running(line, tmp_path, {**env, "CLAWHUB_TOKEN": token}, tmp_path / "agent.log")
    try:
        info, status = await run_one_task(hub_server, agent, "flagged", "Flag it", "python")
        assert await agent.interrupt() == 0, agent.text()
    finally:
        agent.kill()
    profile = info.profile
    assert (profile.model, profile.device, profile.capacity) == (
        "anthropic/claude-opus-4-1",
        "cloud",
        3,
    )
    assert profile.skills == {"python": 0.9, "review": 0.6}
    assert status.output == "claude did: Flag it"  # --preset claude, not the file's codex
    [folder] = runs.iterdir()  # --workdir (kept: --keep-workdirs), not the file's workdir
    assert folder.name.startswith(f"clawhub-{status.id}-1-")
    assert not (tmp_path / "file-runs").exists()
    work = folder / "work"  # a worktree of --repo, on the attempt's branch
    assert (work / "ANSWER.md").read_text() == "claude did: Flag it\n"
    assert (await git_out(["git", "-C", str(work)], "branch", "--show-current")).strip() == (
        f"clawhub/{status.id}-1"
    )
    assert str(work) in await git_out(git, "worktree", "list")


def test_a_preset_flag_replaces_the_files_command_line_for_another_preset(tmp_path: Path) -> None:
    """A file's ``command`` was written for its own preset: ``--preset`` naming another one
    runs that preset's command line; the same preset, or a command after ``--``, keeps it."""
    file = tmp_path / "agent.toml"
    file.write_text('id = "a"\npreset = "codex"\ncommand = ["codex-wrapper", "exec"]\n')
    other = build_config(file, "alpha", False, preset="claude", command=[])
    assert other.preset == "claude" and other.argv() == list(PRESETS["claude"].argv)
    same = build_config(file, "alpha", False, preset="codex", command=[])
    assert same.argv()[:2] == ["codex-wrapper", "exec"]
    given = build_config(file, "alpha", False, preset="claude", command=["mine", "-x"])
    assert given.argv()[:2] == ["mine", "-x"]
