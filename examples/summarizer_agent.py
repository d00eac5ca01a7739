"""A "summarizer" agent with a *sync* handler: the shape of an LLM agent, in plain code.

::

    python examples/summarizer_agent.py   # the hub of `clawhub up` (hub.json)
    clawhub submit "sum up" --skill summarize=0.5 \\
        --input '{"text": "NATS moves messages. The hub matches work."}' --wait

It summarizes the task's input text, or, when the task has no input, the ``text`` fields of
the outputs of the tasks it depends on (see ``examples/submit_graph.py``). The summary is
the first sentence plus word and sentence counts.

Why a sync handler? Most model SDKs and many libraries block. A plain ``def`` handler runs
in a worker thread, so the agent keeps heart-beating while it works; it reports progress
with ``ctx.progress_nowait`` (thread-safe, never blocks) and polls ``ctx.cancelled`` to stop
early when the hub revokes the attempt.

To put a real model behind it, replace ``summarize_text`` with a call such as
``litellm.completion(model=..., messages=[...])`` (imported inside the handler so the agent
starts fast) and pass that model string as ``model=`` so tasks can select on it.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence

from agents_sdk import Agent, SDKError, TaskContext, local_hub_url

SKILLS = {"summarize": 0.7}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def summarize_text(text: str) -> dict[str, object]:
    """A deterministic summary: the first sentence, and how long the text is."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    return {
        "summary": sentences[0] if sentences else "",
        "sentences": len(sentences),
        "words": len(text.split()),
    }


def gather_text(ctx: TaskContext) -> str:
    """The input text, else the ``text`` of every dependency's output, in task-id order."""
    data = ctx.input
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return str(data["text"])
    parts = []
    for task_id in sorted(ctx.deps):
        output = ctx.deps[task_id]
        if isinstance(output, dict) and isinstance(output.get("text"), str):
            parts.append(str(output["text"]))
    if not parts:
        raise ValueError("nothing to summarize: no input text and no dependency text")
    return " ".join(parts)


def build(agent_id: str | None = None, group: str = "default") -> Agent:
    """The summarizer agent."""
    agent = Agent(
        "summarizer",
        id=agent_id,
        skills=SKILLS,
        model=None,  # plain code; an LLM agent would put its litellm model string here
        device="cloud",
        group=group,
    )

    # A plain ``def``: the SDK runs it in a worker thread.
    @agent.handler
    def summarize(ctx: TaskContext) -> dict[str, object]:
        ctx.progress_nowait(0.1, "reading")
        text = gather_text(ctx)
        if ctx.cancelled:  # the hub revoked this attempt: stop early, the result is ignored
            raise RuntimeError("cancelled")
        ctx.progress_nowait(0.6, f"summarizing {len(text)} characters")
        result = summarize_text(text)
        ctx.progress_nowait(1.0, "done")
        return {**result, "model": None}

    return agent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the summarizer until interrupted; 0 on a clean exit."""
    parser = argparse.ArgumentParser(description="A plain-code summarizer agent (sync handler).")
    parser.add_argument(
        "--url",
        default=None,
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL, else the hub.json of clawhub up)",
    )
    parser.add_argument("--group", default="default", help="Claw Group to join")
    parser.add_argument("--id", default=None, help="agent id (default: summarizer-<random>)")
    parser.add_argument(
        "--start-timeout", type=float, default=10.0, help="seconds to wait for a hub at start"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    agent = build(args.id, args.group)
    agent.start_timeout = args.start_timeout
    try:
        # serves until SIGINT/SIGTERM, then leaves the group; with no --url, the local hub
        agent.run(args.url or local_hub_url())
    except SDKError as exc:
        print(f"summarizer agent: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
