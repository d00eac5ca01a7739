"""Ready-made command lines for the coding agents people run, and readers of their output.

=========  =====================================================  ==========================
preset     command line (the prompt goes where it says)           what is read from stdout
=========  =====================================================  ==========================
claude     ``claude -p --output-format stream-json --verbose``    the final ``result`` event:
           (prompt on stdin)                                      its text, ``usage`` and
                                                                  ``total_cost_usd``
codex      ``codex exec --json --skip-git-repo-check -``          the last ``agent_message``
           (prompt on stdin)                                      item; ``turn.completed``
                                                                  usage (no cost printed)
aider      ``aider --message-file {prompt_file} --yes             stdout as the answer; its
           --no-pretty``                                          ``Tokens: … Cost: $…`` lines
gemini     ``gemini -p {prompt} --output-format stream-json``     the assistant ``message``
                                                                  events; the ``result``
                                                                  event's token stats
=========  =====================================================  ==========================

A reader (``OutputReader``) sees each stdout line as it comes: it may turn the line into a
short progress text (``feed``), and at the end it offers the answer text, the usage and an
error the tool reported in its own output (``text``, ``usage``, ``error``); ``None`` means
"nothing of the kind": the runner then takes stdout itself. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from protocols import Usage

__all__ = ["PRESETS", "OutputReader", "Preset", "reader_for"]

#: Longest progress text made from one line of output.
MAX_NOTE = 300


def _clip(text: str, limit: int = MAX_NOTE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dict(event: dict[str, Any], key: str) -> dict[str, Any]:
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class OutputReader:
    """Plain text: stdout is the answer; no usage."""

    def __init__(self) -> None:
        self.text: str | None = None
        """The answer, when the tool's output says which part it is."""
        self.error: str | None = None
        """An error the tool reported in its output (the attempt fails with it)."""
        self.model: str | None = None
        """The model the tool said it used."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.calls = 0

    def feed(self, line: str) -> str | None:
        """Take one stdout line; a progress text for it (``None``: the line itself)."""
        return None

    @property
    def usage(self) -> Usage | None:
        """Tokens and cost the tool printed (``None`` when it printed none)."""
        if not (self.calls or self.prompt_tokens or self.completion_tokens or self.cost):
            return None
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=max(0.0, self.cost),
            calls=max(1, self.calls),
            models=[self.model] if self.model else [],
        )


class ClaudeReader(OutputReader):
    """Claude Code's ``--output-format stream-json`` (one JSON event per line; the last,
    ``type: result``, carries ``result``, ``is_error``, ``usage`` and ``total_cost_usd``)."""

    def feed(self, line: str) -> str | None:
        event = _json_line(line)
        if event is None:
            return None
        kind = event.get("type")
        if kind == "system" and isinstance(event.get("model"), str):
            self.model = f"anthropic/{event['model']}"
            return f"claude: session started ({event['model']})"
        if kind == "assistant":
            return _claude_message(event.get("message"))
        if kind == "user":
            return "claude: tool result"
        if kind == "result":
            result = event.get("result")
            if isinstance(result, str):
                self.text = result
            if event.get("is_error") or event.get("subtype") not in (None, "success"):
                detail = result if isinstance(result, str) and result else event.get("subtype")
                self.error = f"Claude Code reported an error: {detail}"
            usage = _dict(event, "usage")
            self.prompt_tokens += sum(
                _int(usage.get(k))
                for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            self.completion_tokens += _int(usage.get("output_tokens"))
            cost = event.get("total_cost_usd")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
                self.cost += float(cost)
            self.calls += max(1, _int(event.get("num_turns")))
            return f"claude: finished ({event.get('subtype', 'done')})"
        return None


def _claude_message(message: object) -> str | None:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return None
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            return f"claude: uses {block.get('name', 'a tool')}"
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return _clip(f"claude: {block['text']}")
    return None


class CodexReader(OutputReader):
    """Codex CLI's ``exec --json`` (JSON Lines: ``thread.started``, ``turn.started``,
    ``item.started/updated/completed``, ``turn.completed`` with ``usage``, ``turn.failed``,
    ``error``). The answer is the text of the last ``agent_message`` item."""

    def feed(self, line: str) -> str | None:
        event = _json_line(line)
        if event is None:
            return None
        kind = event.get("type")
        item = _dict(event, "item")
        text = item.get("text")
        if (
            kind == "item.completed"
            and item.get("type") == "agent_message"
            and isinstance(text, str)
        ):
            self.text = text
            return _clip(f"codex: {text}")
        if kind in ("item.started", "item.completed") and item.get("type") == "command_execution":
            return _clip(f"codex: runs {item.get('command', 'a command')}")
        if kind == "turn.completed":
            usage = _dict(event, "usage")
            self.prompt_tokens += _int(usage.get("input_tokens"))
            self.completion_tokens += _int(usage.get("output_tokens"))
            self.calls += 1
            return "codex: turn completed"
        if kind in ("turn.failed", "error"):
            error = _dict(event, "error") or event
            self.error = f"Codex reported an error: {error.get('message', 'unknown error')}"
            return _clip(self.error)
        return None


_AIDER_USAGE = re.compile(
    r"Tokens:\s*([\d.,]+)(k?)\s+sent.*?([\d.,]+)(k?)\s+received\..*?Cost:\s*\$([\d.]+)\s+message",
    re.IGNORECASE,
)


def _tokens(number: str, kilo: str) -> int:
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return 0
    return round(value * 1000) if kilo else round(value)


class AiderReader(OutputReader):
    """Aider prints text; each model call ends with ``Tokens: 2.1k sent, 150 received.
    Cost: $0.0042 message, $0.0042 session.``, which is summed."""

    def feed(self, line: str) -> str | None:
        match = _AIDER_USAGE.search(line)
        if match is not None:
            self.prompt_tokens += _tokens(match.group(1), match.group(2))
            self.completion_tokens += _tokens(match.group(3), match.group(4))
            self.cost += float(match.group(5))
            self.calls += 1
        return None


class GeminiReader(OutputReader):
    """Gemini CLI's ``--output-format stream-json`` (``init``, ``message`` with ``role`` and
    ``delta``, ``tool_use``, ``tool_result``, ``error``, ``result`` with ``stats``)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []

    def feed(self, line: str) -> str | None:
        event = _json_line(line)
        if event is None:
            return None
        kind = event.get("type")
        if kind == "init" and isinstance(event.get("model"), str):
            self.model = f"gemini/{event['model']}"
            return f"gemini: session started ({event['model']})"
        if kind == "message" and event.get("role") == "assistant":
            content = event.get("content")
            if isinstance(content, str):
                if not event.get("delta"):
                    self._parts = []
                self._parts.append(content)
                self.text = "".join(self._parts)
                return _clip(f"gemini: {content}")
        if kind == "tool_use":
            return f"gemini: uses {event.get('tool_name', 'a tool')}"
        if kind == "result":
            stats = _dict(event, "stats")
            self.prompt_tokens += _int(stats.get("input_tokens"))
            self.completion_tokens += _int(stats.get("output_tokens"))
            self.calls += 1
            if event.get("status") not in (None, "success"):
                error = event.get("error")
                detail = error.get("message") if isinstance(error, dict) else event.get("status")
                self.error = f"Gemini CLI reported an error: {detail}"
            return f"gemini: finished ({event.get('status', 'done')})"
        return None


@dataclass(frozen=True)
class Preset:
    """A known command-line agent: its command line, its output, the model it reports."""

    name: str
    argv: tuple[str, ...]
    """The command line; ``{prompt}``/``{prompt_file}`` where the prompt goes (neither:
    the prompt goes to stdin)."""
    model: str
    """The profile's ``model`` unless the agent names one (``--model-label``): what the
    matcher's model constraints see."""
    reader: type[OutputReader] = OutputReader


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "claude",
            ("claude", "-p", "--output-format", "stream-json", "--verbose"),
            "anthropic/claude-code",
            ClaudeReader,
        ),
        Preset(
            "codex",
            ("codex", "exec", "--json", "--skip-git-repo-check", "-"),
            "openai/codex",
            CodexReader,
        ),
        Preset(
            "aider",
            ("aider", "--message-file", "{prompt_file}", "--yes", "--no-pretty"),
            "aider",
            AiderReader,
        ),
        Preset(
            "gemini",
            ("gemini", "-p", "{prompt}", "--output-format", "stream-json"),
            "gemini/gemini-cli",
            GeminiReader,
        ),
    )
}


def reader_for(preset: str | None) -> OutputReader:
    """A fresh output reader for one run of ``preset`` (plain text when ``None``)."""
    if preset is None:
        return OutputReader()
    return PRESETS[preset].reader()
