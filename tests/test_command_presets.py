"""The readers of the presets (pure: lines in, answer/usage/error out) on what the real tools
print and on garbage; and `clawhub agent run` refusing to start without a token of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents_sdk.presets import (
    PRESETS,
    AiderReader,
    ClaudeReader,
    CodexReader,
    GeminiReader,
    OutputReader,
    reader_for,
)

GARBAGE = [
    "",
    "not json at all",
    "[1, 2, 3]",
    '{"type": "result",',  # cut off mid-line
    '{"type": 7, "usage": [], "item": "x", "stats": null, "message": 3}',
    '{"type": "assistant", "message": {"content": "not a list"}}',
    '{"type": "result", "usage": "lots", "total_cost_usd": "free", "num_turns": -4}',
    '{"type": "turn.completed", "usage": {"input_tokens": "many", "output_tokens": true}}',
    '{"type": "message", "role": "assistant", "content": {"no": "text"}}',
    "Tokens: lots sent, some received. Cost: $free message",
    "\x00\xff binary \u202e",
]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_reader_takes_garbage_without_failing_or_inventing_an_answer(preset: str) -> None:
    reader = reader_for(preset)
    for line in GARBAGE:
        note = reader.feed(line)
        assert note is None or isinstance(note, str)
    assert reader.text is None
    usage = reader.usage
    assert usage is None or (usage.prompt_tokens, usage.completion_tokens, usage.cost) == (0, 0, 0)


def test_claude_result_gives_the_answer_tokens_and_cost() -> None:
    reader = ClaudeReader()
    reader.feed(json.dumps({"type": "system", "subtype": "init", "model": "claude-opus-4-1"}))
    note = reader.feed(
        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "hi"}]}})
    )
    assert note == "claude: hi"
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "the answer",
        "num_turns": 3,
        "total_cost_usd": 0.25,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
    }
    reader.feed(json.dumps(result))
    assert reader.text == "the answer" and reader.error is None
    usage = reader.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost) == (15, 7, 0.25)
    assert usage.calls == 3 and usage.models == ["anthropic/claude-opus-4-1"]


def test_claude_error_result_is_an_error() -> None:
    reader = ClaudeReader()
    reader.feed(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True}))
    assert reader.error == "Claude Code reported an error: error_max_turns"


def test_codex_sums_turns_and_reports_a_failed_turn() -> None:
    reader = CodexReader()
    for usage in ({"input_tokens": 100, "output_tokens": 10}, {"input_tokens": 50}):
        reader.feed(json.dumps({"type": "turn.completed", "usage": usage}))
    item = {"type": "agent_message", "text": "done"}
    reader.feed(json.dumps({"type": "item.completed", "item": item}))
    reader.feed(json.dumps({"type": "turn.failed", "error": {"message": "quota exceeded"}}))
    assert reader.text == "done" and reader.error == "Codex reported an error: quota exceeded"
    usage = reader.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (150, 10)
    assert usage.calls == 2


def test_aider_cost_lines_are_summed() -> None:
    reader = AiderReader()
    reader.feed("Tokens: 2.1k sent, 1,024 cache write, 150 received. Cost: $0.0042 message, $0.01")
    reader.feed("Tokens: 900 sent, 1.5k received. Cost: $0.0010 message, $0.0052 session.")
    usage = reader.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (3000, 1650)
    assert usage.cost == pytest.approx(0.0052) and usage.calls == 2
    assert reader.text is None  # stdout is the answer


def test_gemini_deltas_join_and_an_error_status_is_an_error() -> None:
    reader = GeminiReader()
    for part in ("Hel", "lo"):
        event = {"type": "message", "role": "assistant", "content": part, "delta": True}
        reader.feed(json.dumps(event))
    assert reader.text == "Hello"
    reader.feed(json.dumps({"type": "message", "role": "assistant", "content": "Again"}))
    assert reader.text == "Again"  # a whole message replaces the parts
    reader.feed(json.dumps({"type": "result", "status": "error", "error": {"message": "quota"}}))
    assert reader.error == "Gemini CLI reported an error: quota"


def test_plain_text_has_no_reader_of_its_own() -> None:
    reader = reader_for(None)
    assert type(reader) is OutputReader and reader.feed('{"type": "result"}') is None


def test_the_agent_refuses_a_hub_that_takes_tokens_without_its_own(tmp_path: Path) -> None:
    """Never the admin token of hub.json: an agent acts as itself, with its own token."""
    data = tmp_path / "data"
    data.mkdir()
    hub = {"url": "nats://127.0.0.1:1", "auth": True, "tokens": {"default": "tk-admin.secret"}}
    (data / "hub.json").write_text(json.dumps(hub))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    clawhub = str(Path(sys.executable).parent / "clawhub")
    proc = subprocess.run(
        [clawhub, "agent", "run", "--id", "coder", "-s", "python=0.5", "--", "true"],
        capture_output=True,
        text=True,
        env={**env, "CLAWHUB_DATA_DIR": str(data)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "requires a token" in proc.stderr and "clawhub token create --role agent" in proc.stderr
