"""A Claude agent that writes and reviews: ``LLMAgent`` with an ``anthropic/...`` model.

::

    export ANTHROPIC_API_KEY=sk-ant-...
    python examples/claude_agent.py   # the hub of `clawhub up` (hub.json)
    clawhub submit "Write release notes for 1.2" --skill writing=0.5 --wait

Offline, with no key: add ``--mock-response "Release notes: ..."``. litellm then answers
with that text instead of calling Anthropic, and everything else is real: the answer
streams (progress), its tokens are counted and priced at Claude's rates.

The agent keeps a note of every task it answers in ``<data-dir>/memory.db`` (default
``~/.clawhub/agents/<id>/``) and puts the notes that match a new task into its prompt.
Start it with the same ``--id`` to keep its memory.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agents_sdk import LLMAgent, SDKError, local_hub_url

MODEL = "anthropic/claude-sonnet-4-5"
SKILLS = {"writing": 0.9, "review": 0.8}


def build(
    agent_id: str = "claude-1",
    group: str = "default",
    *,
    model: str = MODEL,
    mock_response: str | None = None,
    data_dir: Path | None = None,
) -> LLMAgent:
    """The Claude agent (reads ANTHROPIC_API_KEY unless ``mock_response`` is given)."""
    return LLMAgent(
        "claude",
        id=agent_id,
        model=model,
        skills=SKILLS,
        device="cloud",
        group=group,
        temperature=0.3,
        max_tokens=4000,
        mock_response=mock_response,
        data_dir=data_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until interrupted; 0 on a clean exit."""
    parser = argparse.ArgumentParser(description="A Claude agent (writing, review).")
    parser.add_argument(
        "--url",
        default=None,
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL, else the hub.json of clawhub up)",
    )
    parser.add_argument("--group", default="default", help="Claw Group to join")
    parser.add_argument("--id", default="claude-1", help="agent id (keep it to keep memory)")
    parser.add_argument("--model", default=MODEL, help="litellm model string")
    parser.add_argument("--mock-response", default=None, help="answer offline with this text")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder for its memory")
    parser.add_argument("--start-timeout", type=float, default=10.0, help="seconds to find a hub")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)  # no line per model call

    agent = build(
        args.id,
        args.group,
        model=args.model,
        mock_response=args.mock_response,
        data_dir=args.data_dir,
    )
    agent.start_timeout = args.start_timeout
    try:
        # serves until SIGINT/SIGTERM, then leaves the group; with no --url, the local hub
        agent.run(args.url or local_hub_url())
    except SDKError as exc:
        print(f"claude agent: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
