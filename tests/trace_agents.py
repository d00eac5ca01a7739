"""The two agent processes of tests/test_traces.py, each exporting its spans over OTLP to
the test's collector (``OTEL_EXPORTER_OTLP_ENDPOINT`` in its environment):

- ``writer``: an ``LLMAgent`` with one tool, its model a scripted OpenAI-compatible HTTP
  server (tests/scripted_llm.py) run in this process: one call asks for ``word_count``, the
  second answers; so its attempt has two model calls and one tool call;
- ``reviewer``: a plain ``Agent`` with the review skill that accepts every output.

``python tests/trace_agents.py writer|reviewer URL DATA_DIR``; the token is ``CLAWHUB_TOKEN``.
Prints "ready" once registered; SIGTERM stops it (spans are flushed at exit).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from scripted_llm import ScriptedChatServer, calls, say

from agents_sdk import Agent, LLMAgent, RetryPolicy, TaskContext


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words are counted.
    """
    return len(text.split())


async def main(role: str, url: str, data_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    script = [calls(("word_count", {"text": "one two three four"})), say("four words")]
    async with ScriptedChatServer(script) as model:
        if role == "writer":
            agent: Agent = LLMAgent(
                "writer",
                id="writer",
                model="openai/scripted",
                api_base=model.api_base,
                api_key="sk-test",
                skills={"text": 0.9},
                tools=[word_count],
                memory_notes=0,
                remember=False,
                data_dir=data_dir,
                retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.05, timeout=60.0),
            )
        else:
            agent = Agent("reviewer", id="reviewer", skills={"review": 0.9})

            @agent.handler
            async def review(ctx: TaskContext) -> object:
                return {"accept": True, "reasons": "fine"}

        await agent.start(url, timeout=60)
        print("ready", flush=True)
        await stop.wait()
        await agent.stop(drain=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
