"""Shared by the stand-ins of tests/bin (stand-ins of real command-line agents: the
argument shapes, the streaming and the exit codes of the real ones; no model)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def title_of(prompt: str) -> str:
    """The task's title, from the prompt's first line ``# Task: ...``."""
    for line in prompt.splitlines():
        if line.startswith("# Task: "):
            return line[len("# Task: ") :].strip()
    return "(no title)"


def emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def pause() -> None:
    time.sleep(0.05)


def fail(message: str, code: int) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def write_work(name: str, text: str) -> None:
    """A file in the working directory, as a coding agent edits one."""
    Path(name).write_text(text)


def env_flag(name: str) -> str:
    return os.environ.get(name, "")
