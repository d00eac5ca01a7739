"""Skills as reusable instructions: a folder of Markdown files an ``LLMAgent`` loads, one per
skill, so its profile's skills come with the instructions it follows for them.

::

    skills/
      sql-review.md
      release-notes.md

``skills/sql-review.md``::

    ---
    level: 0.8
    description: Reviews SQL migrations for locking and data loss
    ---
    Check every statement for table locks on large tables and for data that an
    ALTER or DROP would lose. Answer with a list: statement, risk, fix.

The file name is the skill's name (lower-cased: ``sql-review``); the optional front matter
(``key: value`` lines between ``---`` lines) sets ``level`` (0..1, default 0.5),
``description`` and ``name``. ``LLMAgent(skills_dir="skills")`` joins each skill to its
profile (a level in ``skills=`` wins over the file's) and, for a task that requires one of
them, puts the file's instructions into the system prompt. Turning a good worked example
into a skill is writing it down in such a file. Pure: reads files, imports nothing heavy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Skill", "load_skills", "skill_prompt"]

#: A skill name (``protocols``' rule: lower case, digits, ``_ . + -``).
SKILL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,63}$")

#: Longest instructions one skill file may hold (characters).
MAX_INSTRUCTIONS = 20_000

DEFAULT_LEVEL = 0.5


@dataclass(frozen=True)
class Skill:
    """One skill file."""

    name: str
    level: float
    """The level the agent claims (0..1)."""
    instructions: str
    """The body of the file: what the agent does for this skill."""
    description: str = ""
    path: Path | None = None


def _front_matter(text: str, where: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        raise ValueError(f"{where}: the front matter opened by '---' is never closed")
    meta: dict[str, str] = {}
    for line in lines[1:end]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{where}: front matter line {line!r} is not 'key: value'")
        meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, "\n".join(lines[end + 1 :])


def parse_skill(text: str, name: str, where: str = "skill") -> Skill:
    """A ``Skill`` from a file's text; raises ``ValueError`` naming the problem."""
    meta, body = _front_matter(text, where)
    name = meta.get("name", name).strip().lower()
    if not SKILL_NAME.match(name):
        raise ValueError(f"{where}: {name!r} is not a skill name (lower case, a-z 0-9 _ . + -)")
    try:
        level = float(meta.get("level", DEFAULT_LEVEL))
    except ValueError:
        raise ValueError(f"{where}: level {meta['level']!r} is not a number") from None
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"{where}: level {level} is not within 0..1")
    instructions = body.strip()
    if not instructions:
        raise ValueError(f"{where}: the skill has no instructions")
    if len(instructions) > MAX_INSTRUCTIONS:
        raise ValueError(f"{where}: instructions longer than {MAX_INSTRUCTIONS} characters")
    return Skill(name, level, instructions, meta.get("description", ""))


def load_skills(directory: str | os.PathLike[str]) -> dict[str, Skill]:
    """Every ``*.md`` file of ``directory`` as a skill, by name (sorted by file name)."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ValueError(f"skills folder {folder} does not exist")
    skills: dict[str, Skill] = {}
    for path in sorted(folder.glob("*.md")):
        skill = parse_skill(path.read_text(encoding="utf-8"), path.stem, str(path))
        if skill.name in skills:
            raise ValueError(f"{path}: skill {skill.name!r} is defined twice")
        skills[skill.name] = Skill(
            skill.name, skill.level, skill.instructions, skill.description, path
        )
    return skills


def skill_prompt(skills: Mapping[str, Skill], required: Iterable[str]) -> str:
    """The system-prompt section for the skills a task requires ("" when none applies)."""
    wanted = [skills[name] for name in sorted(set(required)) if name in skills]
    if not wanted:
        return ""
    out = ["", "", "# Instructions for the skills this task requires"]
    for skill in wanted:
        out += ["", f"## {skill.name}", skill.instructions]
    return "\n".join(out)
