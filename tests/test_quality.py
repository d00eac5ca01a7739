"""The code-quality gates, as tests: lint, format, strict typing, and the layering of the
design (shared/DESIGN.md), checked statically (import-linter) and at run time (what an
import loads)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
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
@pytest.mark.timeout(900)  # mypy --strict over everything took over 180 s under a load of 18
def test_tool_passes(command: tuple[str, ...]) -> None:
    proc = run_tool(*command)
    assert proc.returncode == 0, f"`{' '.join(command)}` failed:\n{proc.stdout}\n{proc.stderr}"


def test_import_linter_checks_every_contract() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    assert len(contracts) >= 9
    proc = run_tool("lint-imports")
    assert f"{len(contracts)} kept, 0 broken" in proc.stdout, proc.stdout + proc.stderr


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


@pytest.mark.parametrize("module", ["clawhub.runtime.hub", "clawhub.cli", "clawhub.cli.demo"])
def test_hub_never_loads_the_sdk(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert "clawhub" in loaded and "nats" in loaded
    forbidden = {"agents_sdk", "tui", "textual"}
    assert not loaded & forbidden, sorted(loaded & forbidden)


def test_the_rule_core_loads_no_io_library() -> None:
    """``import clawhub.board`` (every rule) loads no database, bus, web or model library."""
    loaded = loaded_after("import clawhub.board")
    assert "clawhub" in loaded and "pydantic" in loaded
    io = {"sqlalchemy", "sqlmodel", "nats", "fastapi", "uvicorn", "starlette", "litellm"}
    assert not loaded & io, sorted(loaded & io)


def test_no_module_or_class_grows_past_its_limit() -> None:
    """Modules stay under ~500 lines and classes under ~600 (split them along a seam)."""
    too_long: list[str] = []
    for package in ("protocols", "clawhub", "agents_sdk", "tui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            lines = text.count("\n")
            if lines > 520:
                too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    size = node.end_lineno - node.lineno + 1
                    if size > 600:
                        too_long.append(f"{path.relative_to(ROOT)}: class {node.name}: {size}")
    assert not too_long, too_long


def test_cli_client_commands_stay_light() -> None:
    """``clawhub agents`` and friends never load the store or the server half."""
    loaded = loaded_after("import clawhub, clawhub.cli, clawhub.cli.client")
    assert "typer" in loaded
    heavy = {"sqlalchemy", "sqlmodel", "agents_sdk"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_examples_use_public_modules_only() -> None:
    """The design (shared/DESIGN.md): examples import anything *public*, never a private
    ``_module``."""
    private = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and any(
                part.startswith("_") for part in words[1].split(".")[1:]
            ):
                private.append(f"{path.name}: {line.strip()}")
    assert not private, private
