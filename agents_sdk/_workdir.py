"""The folders of one task's run: a private one for the task's files, and the working
directory the command runs in.

Each attempt gets a fresh folder ``clawhub-<task>-<attempt>-XXXX`` (under ``base``, default
the system's temp folder) holding ``task.json``, ``prompt.md``, the ``output`` file the
command may write, and ``work/``, the command's working directory. With a ``repo``,
``work/`` is a ``git worktree`` of it on a branch of its own, ``clawhub/<task>-<attempt>``,
made from the repository's ``HEAD``; changes left uncommitted by a successful run are
committed there, so the work outlives the folder. Two attempts never share a folder; each is
removed when its run ends (``keep``: left in place, for debugging).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CommandError


@dataclass(frozen=True)
class TaskDirs:
    """The folders and files of one attempt."""

    root: Path
    work: Path
    branch: str | None

    @property
    def task_file(self) -> Path:
        return self.root / "task.json"

    @property
    def prompt_file(self) -> Path:
        return self.root / "prompt.md"

    @property
    def output_file(self) -> Path:
        return self.root / "output"


async def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``git -C repo args``; its stdout, or a ``CommandError`` with its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(repo),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )
    except FileNotFoundError:
        raise CommandError("git", "git is not installed, and the agent has a repo") from None
    out, err = await proc.communicate()
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        raise CommandError("git", f"git {' '.join(args[:2])} in {repo} failed: {text}")
    return out.decode(errors="replace")


class Workdirs:
    """Makes and removes the folders of each attempt (see the module doc)."""

    def __init__(self, base: Path | None, repo: Path | None, keep: bool = False) -> None:
        self.base = base
        self.repo = repo
        self.keep = keep
        self._git_lock = asyncio.Lock()  # one worktree change at a time in one repository

    async def check(self) -> None:
        """Fail early when ``base`` cannot be made or ``repo`` is not a git repository."""
        if self.base is not None:
            self.base.mkdir(parents=True, exist_ok=True)
        if self.repo is not None:
            if not self.repo.is_dir():
                raise CommandError("git", f"--repo {self.repo} is not a folder")
            await git(self.repo, "rev-parse", "--verify", "HEAD")

    async def make(self, task_id: str, attempt: int) -> TaskDirs:
        prefix = f"clawhub-{task_id}-{attempt}-"
        root = Path(tempfile.mkdtemp(prefix=prefix, dir=self.base))
        work = root / "work"
        branch = None
        if self.repo is None:
            work.mkdir()
        else:
            branch = f"clawhub/{task_id}-{attempt}"
            try:
                async with self._git_lock:
                    await git(self.repo, "worktree", "add", "-B", branch, str(work), "HEAD")
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
        return TaskDirs(root, work, branch)

    async def save(self, dirs: TaskDirs, agent_id: str, message: str) -> bool:
        """Commit what a successful run left uncommitted in its worktree; True if it did."""
        if self.repo is None or dirs.branch is None:
            return False
        if not (await git(dirs.work, "status", "--porcelain")).strip():
            return False
        identity = {
            "GIT_AUTHOR_NAME": agent_id,
            "GIT_AUTHOR_EMAIL": f"{agent_id}@clawhub.invalid",
            "GIT_COMMITTER_NAME": agent_id,
            "GIT_COMMITTER_EMAIL": f"{agent_id}@clawhub.invalid",
        }
        env = {**os.environ, **identity}
        await git(dirs.work, "add", "-A", env=env)
        commit = ("-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message)
        await git(dirs.work, *commit, env=env)
        return True

    async def remove(self, dirs: TaskDirs) -> None:
        if self.keep:
            return
        await asyncio.to_thread(shutil.rmtree, dirs.root, True)
        if self.repo is not None:  # the folder is gone: git forgets the worktree, keeps the branch
            with contextlib.suppress(CommandError):
                async with self._git_lock:
                    await git(self.repo, "worktree", "prune")
