"""``CommandAgent``: any command-line agent (Claude Code, Codex, Aider, Gemini CLI, a team's
own script) as a worker of the group, with no code around it.

::

    from agents_sdk import CommandAgent

    agent = CommandAgent(preset="claude", id="coder", skills={"python": 0.9}, repo=".")
    agent.run()                      # or: clawhub agent run --preset claude --id coder ...

    CommandAgent(["./review.sh", "{prompt_file}"], id="reviewer", skills={"review": 0.6})

For each task it runs the command once, in a folder of the attempt's own (``_workdir``: a
fresh temp folder, or a git worktree of ``repo`` on the branch ``clawhub/<task>-<attempt>``):

- **in:** the prompt (title, instructions, input, the outputs it depends on, acceptance
  criteria, why earlier attempts were rejected) replaces ``{prompt}`` or, written to a file,
  ``{prompt_file}`` in the command line; with neither it goes to stdin. The environment
  names the files: ``CLAWHUB_TASK_FILE`` (the assignment as JSON), ``CLAWHUB_PROMPT_FILE``,
  ``CLAWHUB_OUTPUT_FILE`` (where the command may write its result), ``CLAWHUB_TASK_ID``,
  ``CLAWHUB_ATTEMPT``, ``CLAWHUB_WORKDIR``, ``CLAWHUB_AGENT_ID``. The agent's own token
  (``CLAWHUB_TOKEN``) is never passed on: the command cannot act as the agent.
- **while it runs:** every line on stdout or stderr is progress, at most one message per
  ``progress_interval`` (the rest coalesced), so a silent, hung command is *stalled* by the
  hub and a chatty one is not.
- **out:** exit 0 → the result: the ``CLAWHUB_OUTPUT_FILE`` when the command wrote it (JSON
  when it parses as JSON), else the answer the preset reads from its output, else stdout
  (its last ``max_output`` characters); when the task has an ``output_schema``, the JSON in
  it. Non-zero → ``CommandFailed`` with the last lines of stderr: a failed attempt, which
  the hub retries. Usage and cost come from the tool's own JSON where it prints them.
- **stopped:** a revoke, cancel or stall cancels the handler: ``SIGTERM`` to the command's
  whole process group, ``SIGKILL`` after ``grace`` seconds (``_process``).

A command that is not there fails ``start`` with ``CommandNotFound``, before joining.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from protocols import Clearance, Device

from ._agent import Agent
from ._context import TaskContext
from ._process import Finished, ProgressPump, run_process
from ._prompt import parse_json_answer, task_prompt
from ._transport import TOKEN_ENV
from ._workdir import TaskDirs, Workdirs
from .errors import CommandError, CommandFailed, CommandNotFound, CommandOutputError
from .presets import PRESETS, OutputReader, reader_for

__all__ = ["PLACEHOLDERS", "CommandAgent", "CommandConfig", "load_config", "make_config"]

#: What a command line may contain, replaced per task.
PLACEHOLDERS = (
    "{prompt}",
    "{prompt_file}",
    "{task_file}",
    "{output_file}",
    "{workdir}",
    "{task_id}",
    "{attempt}",
)
#: Longest progress text made of one line of output.
MAX_NOTE = 500
#: Longest prompt passed as one argument (Linux takes at most 128 KiB per argument).
MAX_PROMPT_ARG = 100_000

PresetName = Literal["claude", "codex", "aider", "gemini"]

ANSWER_HINT = (
    "## How to answer\n"
    "Work in the current directory (a folder of this task's own). Your final reply is the "
    "task's result; or write the result to the file named by the environment variable "
    "CLAWHUB_OUTPUT_FILE. The task as JSON is in the file named by CLAWHUB_TASK_FILE."
)


class CommandConfig(BaseModel):
    """A command agent, as a config file (TOML or YAML) or ``clawhub agent run`` flags say."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Participant id (a token acts as one).")
    name: str | None = Field(default=None, description="Display name (default: the id).")
    preset: PresetName | None = Field(default=None, description="A known agent's command line.")
    command: list[str] = Field(
        default_factory=list, description="The command line (replaces the preset's)."
    )
    args: list[str] = Field(default_factory=list, description="Arguments added at the end.")
    skills: dict[str, float] = Field(default_factory=dict, description="Skill name → level.")
    model_label: str | None = Field(
        default=None, description="The profile's model (default: the preset's), for matching."
    )
    device: Device = "laptop"
    capacity: int = Field(default=1, ge=1, le=1000, description="Tasks run at once.")
    labels: list[str] = Field(default_factory=list)
    clearance: Clearance = "public"
    cost: float = Field(default=0.0, ge=0.0, description="Cost of a typical task (USD).")
    group: str = "default"
    workdir: str | None = Field(
        default=None, description="Where the per-task folders go (default: the temp folder)."
    )
    repo: str | None = Field(default=None, description="Run each task in a worktree of it.")
    keep_workdirs: bool = Field(default=False, description="Leave the folders after a run.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment.")
    grace: float = Field(default=5.0, gt=0, description="Seconds from SIGTERM to SIGKILL.")
    progress_interval: float = Field(
        default=0.5, ge=0.05, description="Seconds between progress messages at most."
    )
    max_output: int = Field(
        default=100_000, ge=1000, description="Characters of stdout kept as the result."
    )

    @model_validator(mode="after")
    def _has_a_command(self) -> CommandConfig:
        if not self.command and self.preset is None:
            raise ValueError(
                f"give a command or a preset ({', '.join(PRESETS)}), e.g. "
                "`clawhub agent run --id coder --skill python=0.9 -- ./my-agent.sh`"
            )
        return self

    def argv(self) -> list[str]:
        """The command line: ``command`` (else the preset's), then ``args``."""
        base = self.command or list(PRESETS[self.preset].argv if self.preset else [])
        return [*base, *self.args]


def load_config(path: str | os.PathLike[str], **overrides: Any) -> CommandConfig:
    """A ``CommandConfig`` from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file, with
    ``overrides`` (the ones not ``None``) on top. Raises ``ValueError`` naming the problem."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml  # noqa: PLC0415 - only for YAML files

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise ValueError(f"{file} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a table of settings at the top")
    for key in ("repo", "workdir"):  # relative to the file, not to where it is run from
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = str((file.parent / Path(value).expanduser()).resolve())
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(data, str(file))


def make_config(data: Mapping[str, Any], source: str = "the agent's settings") -> CommandConfig:
    """A ``CommandConfig`` from plain data; a ``ValueError`` naming each bad key."""
    try:
        return CommandConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from None


def find_executable(program: str, path: str | None = None) -> str:
    """The absolute path of ``program`` (on ``PATH`` unless it has a ``/``), else
    ``CommandNotFound`` (tasks run in other folders, so a relative path is made absolute)."""
    found = shutil.which(program, path=path)
    if found is None:
        where = "there" if "/" in program else "on PATH"
        raise CommandNotFound(
            program, f"command not found: {program!r} is not {where} (or not executable)"
        )
    return os.path.abspath(found)


class CommandAgent(Agent):
    """An ``Agent`` whose handler runs a command per task (see the module doc).

    ``command`` is the command line (or ``preset`` gives it: claude, codex, aider, gemini;
    ``args`` are added at the end). ``workdir`` is where the per-task folders go, ``repo``
    a git repository to make each task a worktree of. ``env`` is added to the command's
    environment. Other keywords (``id``, ``skills``, ``capacity``, ``device`` ...) go to
    ``Agent``; ``model`` defaults to the preset's label.
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        preset: PresetName | None = None,
        args: Sequence[str] = (),
        name: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        repo: str | os.PathLike[str] | None = None,
        keep_workdirs: bool = False,
        env: Mapping[str, str] | None = None,
        grace: float = 5.0,
        progress_interval: float = 0.5,
        max_output: int = 100_000,
        model: str | None = None,
        **agent_kwargs: Any,
    ) -> None:
        config = CommandConfig(
            preset=preset,
            command=list(command or []),
            args=list(args),
            grace=grace,
            progress_interval=progress_interval,
            max_output=max_output,
        )
        self.argv = config.argv()
        """The command line, placeholders not yet filled in."""
        self.preset = preset
        self.env = dict(env or {})
        self.grace = grace
        self.progress_interval = progress_interval
        self.max_output = max_output
        self.workdirs = Workdirs(
            Path(workdir).expanduser().resolve() if workdir else None,
            Path(repo).expanduser().resolve() if repo else None,
            keep_workdirs,
        )
        label = model if model is not None else (PRESETS[preset].model if preset else None)
        program = Path(self.argv[0]).name
        agent_kwargs.setdefault("tools", [preset or program])
        agent_id = agent_kwargs.get("id")
        super().__init__(name or agent_id or preset or program, model=label, **agent_kwargs)
        self.handler(self.run_command)

    @classmethod
    def from_config(cls, config: CommandConfig) -> CommandAgent:
        """The agent a ``CommandConfig`` describes."""
        return cls(
            config.command or None,
            preset=config.preset,
            args=config.args,
            name=config.name,
            workdir=config.workdir,
            repo=config.repo,
            keep_workdirs=config.keep_workdirs,
            env=config.env,
            grace=config.grace,
            progress_interval=config.progress_interval,
            max_output=config.max_output,
            model=config.model_label,
            id=config.id,
            skills=config.skills,
            device=config.device,
            capacity=config.capacity,
            labels=config.labels,
            clearance=config.clearance,
            cost=config.cost,
            group=config.group,
        )

    async def check(self) -> None:
        """Fail now, not per task: ``CommandNotFound`` when the executable is not there, a
        ``CommandError`` when ``workdir`` cannot be made or ``repo`` is not a repository."""
        path = {**os.environ, **self.env}.get("PATH")
        self.argv[0] = find_executable(self.argv[0], path)
        await self.workdirs.check()

    async def start(self, *args: Any, **kwargs: Any) -> None:
        """``check``, then ``Agent.start``."""
        await self.check()
        await super().start(*args, **kwargs)

    # -- one task ---------------------------------------------------------------------------

    def prompt_for(self, ctx: TaskContext) -> str:
        """The prompt of one task (the same sections an ``LLMAgent`` sends)."""
        return f"{task_prompt(ctx.spec, ctx.deps, ctx.feedback, [])}\n\n{ANSWER_HINT}\n"

    async def run_command(self, ctx: TaskContext) -> JsonValue:
        """The handler: run the command for this task, its output the result."""
        dirs = await self.workdirs.make(ctx.task_id, ctx.attempt)
        try:
            return await self._run_in(ctx, dirs)
        finally:
            await self.workdirs.remove(dirs)

    def _fill(self, arg: str, values: Mapping[str, str]) -> str:
        for key, value in values.items():
            arg = arg.replace(key, value)
        return arg

    async def _run_in(self, ctx: TaskContext, dirs: TaskDirs) -> JsonValue:
        prompt = self.prompt_for(ctx)
        task_json = ctx.assignment.model_dump_json(indent=2)
        await asyncio.to_thread(dirs.task_file.write_text, task_json)
        await asyncio.to_thread(dirs.prompt_file.write_text, prompt)
        values = {
            "{prompt_file}": str(dirs.prompt_file),
            "{task_file}": str(dirs.task_file),
            "{output_file}": str(dirs.output_file),
            "{workdir}": str(dirs.work),
            "{task_id}": ctx.task_id,
            "{attempt}": str(ctx.attempt),
            "{prompt}": prompt,
        }
        inline = any("{prompt}" in a for a in self.argv)
        if inline and len(prompt) > MAX_PROMPT_ARG:
            raise CommandError(
                self.argv[0],
                f"the prompt is {len(prompt)} characters, too long for one argument "
                f"(at most {MAX_PROMPT_ARG}): use {{prompt_file}} or stdin instead of {{prompt}}",
            )
        argv = [self._fill(a, values) for a in self.argv]
        on_stdin = not any(p in a for a in self.argv for p in ("{prompt}", "{prompt_file}"))
        env = {**os.environ, **self.env}
        env.pop(TOKEN_ENV, None)  # the agent's credential stays with the agent
        env.update(
            CLAWHUB_TASK_FILE=str(dirs.task_file),
            CLAWHUB_PROMPT_FILE=str(dirs.prompt_file),
            CLAWHUB_OUTPUT_FILE=str(dirs.output_file),
            CLAWHUB_TASK_ID=ctx.task_id,
            CLAWHUB_ATTEMPT=str(ctx.attempt),
            CLAWHUB_WORKDIR=str(dirs.work),
            CLAWHUB_AGENT_ID=self.id,
        )
        reader = reader_for(self.preset)
        pump = ProgressPump(lambda text: ctx.progress(None, text), self.progress_interval)

        def on_line(stream: str, line: str) -> None:
            note = reader.feed(line) if stream == "stdout" else None
            text = (note or line.strip())[:MAX_NOTE]
            if text:
                pump.note(text if stream == "stdout" else f"stderr: {text}")

        program = Path(argv[0]).name
        where = f"worktree {dirs.work} (branch {dirs.branch})" if dirs.branch else str(dirs.work)
        await ctx.progress(0.0, f"running {program} in {where}")
        sending = asyncio.create_task(pump.run())
        try:
            finished = await run_process(
                argv,
                cwd=str(dirs.work),
                env=env,
                stdin=prompt.encode() if on_stdin else None,
                on_line=on_line,
                grace=self.grace,
                max_output=self.max_output,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise CommandNotFound(
                argv[0], f"cannot run {argv[0]!r}: {exc.strerror or exc}"
            ) from None
        finally:
            await pump.close(sending)
        if (usage := reader.usage) is not None:
            if not usage.models and self.profile.model:
                usage = usage.model_copy(update={"models": [self.profile.model]})
            ctx.add_usage(usage)
        self._raise_for(program, finished, reader)
        output = await self._output(ctx, dirs, finished, reader, program)
        if await self.workdirs.save(
            dirs, self.id, f"clawhub: task {ctx.task_id}, attempt {ctx.attempt} ({self.id})"
        ):
            await ctx.log(f"uncommitted changes committed on branch {dirs.branch}")
        await ctx.progress(
            1.0, f"{program} exited 0 after {finished.lines} lines ({pump.sent} progress messages)"
        )
        return output

    def _raise_for(self, program: str, finished: Finished, reader: OutputReader) -> None:
        code = finished.returncode
        tail = "\n".join(finished.stderr_tail).strip()
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            said = f"; the last lines of its stderr:\n{tail}" if tail else " (nothing on stderr)"
            raise CommandFailed(program, f"{program} {how}{said}", code, tail)
        if reader.error is not None:
            raise CommandFailed(program, f"{program} exited 0, but {reader.error}", 0, tail)

    async def _output(
        self,
        ctx: TaskContext,
        dirs: TaskDirs,
        finished: Finished,
        reader: OutputReader,
        program: str,
    ) -> JsonValue:
        wants_json = ctx.spec.output_schema is not None
        written = await asyncio.to_thread(_read_output, dirs.output_file)
        if written is not None and written.strip():
            try:
                value: JsonValue = json.loads(written)
            except ValueError:
                if wants_json:
                    raise CommandOutputError(
                        program,
                        f"{program} wrote CLAWHUB_OUTPUT_FILE, but it is not JSON and the task "
                        f"asks for JSON (output_schema): {written.strip()[:200]!r}",
                    ) from None
                return written
            return value
        if reader.text is not None:
            text = reader.text
        elif finished.stdout_cut:
            text = f"[… {finished.stdout_cut} earlier characters cut]\n{finished.stdout}"
        else:
            text = finished.stdout
        if not wants_json:
            return text.strip()
        try:
            return parse_json_answer(text)
        except ValueError as exc:
            raise CommandOutputError(
                program, f"{program}: {exc}; the task asks for JSON (output_schema)"
            ) from None


def _read_output(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
