"""A local-model agent for private data: ``LLMAgent`` with an ``ollama/...`` model.

::

    ollama pull llama3.2 && ollama serve          # the model runs on this machine
    python examples/ollama_agent.py   # the hub of `clawhub up` (hub.json)
    clawhub submit "Summarise the salary sheet" --skill summarize=0.5 --wait

No API key: litellm talks to Ollama at ``--api-base`` (default ``http://localhost:11434``).
The agent has ``private`` clearance and a local model, so tasks marked
``constraints.data = "private"`` or ``constraints.local_only`` may go to it and never to a
cloud model. litellm has no price for local models: its cost counts as 0 (it says so in
the task's log).

Offline, with no Ollama: add ``--mock-response "..."`` and litellm answers with that text.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agents_sdk import LLMAgent, SDKError, local_hub_url

MODEL = "ollama/llama3.2"
API_BASE = "http://localhost:11434"
SKILLS = {"summarize": 0.7, "private-data": 0.8}


def build(
    agent_id: str = "ollama-1",
    group: str = "default",
    *,
    model: str = MODEL,
    api_base: str = API_BASE,
    mock_response: str | None = None,
    data_dir: Path | None = None,
) -> LLMAgent:
    """The local-model agent (talks to Ollama at ``api_base`` unless ``mock_response``)."""
    return LLMAgent(
        "ollama",
        id=agent_id,
        model=model,
        api_base=api_base,
        skills=SKILLS,
        device="laptop",
        clearance="private",
        labels=["local"],
        group=group,
        temperature=0.2,
        mock_response=mock_response,
        data_dir=data_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until interrupted; 0 on a clean exit."""
    parser = argparse.ArgumentParser(description="A local Ollama agent (private data).")
    parser.add_argument(
        "--url",
        default=None,
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL, else the hub.json of clawhub up)",
    )
    parser.add_argument("--group", default="default", help="Claw Group to join")
    parser.add_argument("--id", default="ollama-1", help="agent id (keep it to keep memory)")
    parser.add_argument("--model", default=MODEL, help="litellm model string (ollama/...)")
    parser.add_argument("--api-base", default=API_BASE, help="where Ollama listens")
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
        api_base=args.api_base,
        mock_response=args.mock_response,
        data_dir=args.data_dir,
    )
    agent.start_timeout = args.start_timeout
    try:
        # serves until SIGINT/SIGTERM, then leaves the group; with no --url, the local hub
        agent.run(args.url or local_hub_url())
    except SDKError as exc:
        print(f"ollama agent: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
