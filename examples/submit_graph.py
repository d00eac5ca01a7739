"""Submit a small task graph to a running hub, wait for it, print who did what.

::

    clawhub up --no-auth &                 # or with tokens: see docs/agents.md
    python examples/echo_agent.py &
    python examples/summarizer_agent.py &
    python examples/submit_graph.py

With no ``--url`` each finds the hub of ``clawhub up`` (``agents_sdk.local_hub_url()``:
``CLAWHUB_NATS_URL``, else ``hub.json``); ``HubClient`` then also takes ``hub.json``'s admin
token for the group when ``CLAWHUB_TOKEN`` is not set.

The graph: two ``text`` tasks (the echo agent shouts two sentences) feed one ``summarize``
task. A task that ``depends_on`` others waits until they are done and then receives their
outputs (``ctx.deps`` in the handler), so the summary is made of the shouted text.

Task ids are chosen here, so ``depends_on`` can name tasks of the same batch; a run id makes
them unique per run (ids must be unique in the group).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import Sequence

from agents_sdk import HubClient, SDKError
from protocols import TaskSpec, TaskState, TaskStatus


def build_graph(run: str) -> list[TaskSpec]:
    """Two echo tasks and a summary that depends on both."""
    return [
        TaskSpec(
            id=f"{run}-hello",
            title="Shout the greeting",
            skills={"text": 0.5},  # needs an agent with skill `text` at level >= 0.5
            input={"text": "Claw Hub matches work to agents."},
        ),
        TaskSpec(
            id=f"{run}-news",
            title="Shout the news",
            skills={"text": 0.5},
            input={"text": "Agents join from any device. Humans too."},
        ),
        TaskSpec(
            id=f"{run}-digest",
            title="Summarize both",
            skills={"summarize": 0.5},
            depends_on=[f"{run}-hello", f"{run}-news"],  # runs once both are done
            max_attempts=2,
        ),
    ]


def describe(status: TaskStatus, run: str) -> str:
    """One line per task: short id, state, who did it, output (or error)."""
    done_by = next((h.agent_id for h in status.history if h.outcome == "done"), "-")
    detail = json.dumps(status.output, sort_keys=True) if status.output is not None else ""
    if status.state is not TaskState.DONE:
        detail = status.error or ""
    short = status.id.removeprefix(f"{run}-")
    return f"{short:<7} {status.state.value:<9} {done_by:<20} {detail}"


async def submit_and_wait(
    url: str | None, group: str, run: str, timeout: float, request_timeout: float = 10.0
) -> list[TaskStatus]:
    """Submit the graph and wait until every task is done, failed or cancelled (``url``
    None: the local hub)."""
    async with HubClient(url, group=group, timeout=request_timeout) as hub:
        ids = await hub.submit(build_graph(run))
        print(f"submitted {len(ids)} tasks (run {run})")
        return await hub.wait_all(ids, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """Submit, wait, print; 0 when every task is done."""
    parser = argparse.ArgumentParser(description="Submit a small task graph and wait for it.")
    parser.add_argument(
        "--url",
        default=None,
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL, else the hub.json of clawhub up)",
    )
    parser.add_argument("--group", default="default", help="Claw Group")
    parser.add_argument("--id", default=None, help="run id, the prefix of the task ids")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument(
        "--request-timeout", type=float, default=10.0, help="seconds for each hub request"
    )
    args = parser.parse_args(argv)
    run = args.id or f"run-{secrets.token_hex(3)}"

    try:
        final = asyncio.run(
            submit_and_wait(args.url, args.group, run, args.timeout, args.request_timeout)
        )
    except SDKError as exc:  # no hub, refused graph, or WaitTimeout
        print(f"submit_graph: {exc}")
        return 1
    for status in final:
        print(describe(status, run))
    return 0 if all(s.state is TaskState.DONE for s in final) else 1


if __name__ == "__main__":
    raise SystemExit(main())
