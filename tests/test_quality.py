"""The code-quality gates, as tests: lint, format, strict typing, and the layering of the
design (shared/DESIGN.md), checked statically (import-linter) and at run time (what an
import loads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_tool(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    tool = BIN / args[0]
    if not tool.exists():
        pytest.fail(f"{tool} is missing: install the dev extras (pip install -e '.[dev]')")
    return subprocess.run(
        [str(tool), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "--no-cache", "."),
        ("ruff", "format", "--check", "--no-cache", "."),
        ("lint-imports",),
        ("mypy",),  # strict, with the packages listed in pyproject.toml
    ],
    ids=lambda c: " ".join(c[:2]) if c[0] == "ruff" else c[0],
)
def test_tool_passes(command: tuple[str, ...]) -> None:
    proc = run_tool(*command)
    assert proc.returncode == 0, f"`{' '.join(command)}` failed:\n{proc.stdout}\n{proc.stderr}"


def test_import_linter_checks_every_contract() -> None:
    proc = run_tool("lint-imports")
    assert "5 kept, 0 broken" in proc.stdout, proc.stdout + proc.stderr


# -- run-time layering (agents_sdk is checked in test_sdk_unit.py) -----------------------------


def loaded_after(statement: str) -> set[str]:
    """Top-level names of the non-stdlib modules that ``statement`` adds to a fresh
    interpreter (what a bare interpreter already has, such as site hooks, is left out)."""
    code = (
        "import sys\n"
        f"{statement}\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "print('\\n'.join(sorted(n for n in names if n not in sys.stdlib_module_names)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # _sysconfigdata_* is the standard library's, but not in sys.stdlib_module_names
    names = {n for n in proc.stdout.split() if not n.startswith("_sysconfigdata")}
    return names if statement == "pass" else names - loaded_after("pass")


def test_protocols_loads_only_pydantic() -> None:
    pydantic_family = {
        "protocols",
        "pydantic",
        "pydantic_core",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
    }
    loaded = loaded_after("import protocols, protocols.subjects, protocols.schema")
    assert "pydantic" in loaded  # the check sees third-party modules at all
    assert loaded <= pydantic_family, sorted(loaded - pydantic_family)


@pytest.mark.parametrize("module", ["clawhub.hub", "clawhub.cli", "clawhub.demo"])
def test_hub_never_loads_the_sdk(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert "clawhub" in loaded and "nats" in loaded
    forbidden = {"agents_sdk", "tui", "textual"}
    assert not loaded & forbidden, sorted(loaded & forbidden)


def test_cli_client_commands_stay_light() -> None:
    """``clawhub agents`` and friends never load the store or the server half."""
    loaded = loaded_after("import clawhub, clawhub.cli, clawhub.client")
    assert "typer" in loaded
    heavy = {"sqlalchemy", "sqlmodel", "agents_sdk"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_examples_use_public_modules_only() -> None:
    """The design's rule (shared/DESIGN.md): examples import anything *public*, never a
    private ``_module``."""
    private = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and any(
                part.startswith("_") for part in words[1].split(".")[1:]
            ):
                private.append(f"{path.name}: {line.strip()}")
    assert not private, private
