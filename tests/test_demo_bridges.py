"""``clawhub demo --bridges`` as a newcomer runs it from docs/index.md ("The bridges demo"): a
real process, which starts a real hub (nats-server with tokens required, SQLite), a real A2A
agent (a2a-sdk server), a real Synadia-protocol agent (its host SDK, on a nats-server of its
own) and a real MCP client, each its own process, and kills one of them mid-task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "index.md"
MARK = "<!-- demo-test: bridges -->"
#: Generous: the machine is loaded (the demo takes ~25 s on an idle one).
RUN_TIMEOUT = 400


def page_blocks() -> tuple[str, list[str]]:
    """The command the page shows after the marker, and the output it shows after that
    (its lines; ``...`` stands for the lines that vary)."""
    text = PAGE.read_text()
    after = text[text.index(MARK) + len(MARK) :]
    fences = re.findall(r"```(\w*)\n(.*?)```", after, flags=re.S)
    (lang, command), (out_lang, output) = fences[0], fences[1]
    assert (lang, out_lang) == ("bash", "text"), fences[:2]
    return command.strip(), output.rstrip("\n").split("\n")


def same_shape(line: str) -> str:
    """A line with every number (pids, ports, seconds) as ``N``."""
    return re.sub(r"\d+(\.\d+)?", "N", line.rstrip())


def shown_in_order(shown: list[str], printed: list[str]) -> list[str]:
    """The page's lines that are not, in that order, among the printed ones (modulo
    numbers); ``...`` skips any number of printed lines."""
    want = [same_shape(line) for line in shown if line != "..."]
    got = [same_shape(line) for line in printed]
    missing, at = [], 0
    for line in want:
        try:
            at = got.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_the_bridges_demo_runs_as_the_page_shows(tmp_path: Path) -> None:
    command, shown = page_blocks()
    assert command == ".venv/bin/clawhub demo --bridges"
    work = tmp_path / "clawhub"  # laid out like the repository, in a home of its own
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "home").mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    env = {**clean, "HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    run = subprocess.run(
        ["bash", "-c", command],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    said = f"exit {run.returncode}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.returncode == 0, said
    out = run.stdout
    # who did what: one task each, through three different paths
    assert re.search(r"Write the headline +done by scribe \(A2A agent via the A2A bridge\)", out)
    assert re.search(
        r"Announce it in the channel +done by demo-clawhub-crier "
        r"\(NATS-protocol agent via the nats-agents bridge\)",
        out,
    ), said
    assert re.search(
        r"Count the words of the note +done by mcp-tallier \(MCP-client worker via /mcp\)", out
    ), said
    # ... and each did it its own way (the outputs come from the outside processes)
    assert '{"by": "Scribe", "text": "Claw Hub Brings Your Own Agents"}' in out, said
    assert '{"text": "BRIDGES ARE LIVE "}' in out, said
    assert '{"longest": "participants", "words": 76}' in out, said
    # the kill, the loss and the reassignment
    assert re.search(r"kill -9 the A2A agent scribe \(pid \d+\) in the middle of", out), said
    assert "agent.lost        scribe" in out, said
    assert "attempts of 'Polish the release note': scribe: lost, demo-clawhub-crier: done" in out, (
        said
    )
    assert re.search(r"4/4 tasks done in [\d.]+s .*; reassigned after 1 lost$", out, re.M), said
    assert "Traceback" not in run.stderr, said
    # what the page shows is what it printed
    assert not shown_in_order(shown, out.splitlines()), (
        shown_in_order(shown, out.split("\n")),
        said,
    )


def test_shown_in_order_finds_what_is_missing_or_out_of_order() -> None:
    printed = ["a 1", "x", "b 22", "c"]
    assert shown_in_order(["a 7", "...", "b 3", "c"], printed) == []
    assert shown_in_order(["b 1", "a 1"], printed) == ["a N"]
    assert shown_in_order(["d"], printed) == ["d"]
