"""Run a goal on a running hub: from a plan file (no model needed) or from free text that
the hub's coordinator model plans into tasks. Prints progress, the deliverable and the spend.

::

    clawhub up --no-auth &
    python examples/echo_agent.py &
    python examples/summarizer_agent.py &
    python examples/run_goal.py --plan examples/goal_plan.yaml

    # planned by the coordinator model (the hub needs e.g. MOONSHOT_API_KEY):
    python examples/run_goal.py --text "Summarize our news"

With no ``--url`` it finds the hub of ``clawhub up`` (``agents_sdk.local_hub_url()``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from agents_sdk import HubClient, SDKError
from protocols import GoalSpec, GoalStatus, Plan


def load_plan(path: Path) -> Plan:
    """A plan from YAML or JSON (JSON is YAML too)."""
    return Plan.model_validate(yaml.safe_load(path.read_text()))


async def run_goal(
    url: str | None, text: str, plan: Plan | None, budget: float | None, timeout: float
) -> GoalStatus:
    """Submit the goal, print each goal event as it comes, return the final status."""
    async with HubClient(url) as hub:
        status = await hub.submit_goal(GoalSpec(text=text, budget=budget), plan=plan)
        print(f"goal {status.id}: {status.state}")

        async def follow() -> None:
            async for event in hub.events(["goal"]):
                if event.data.get("goal") == status.id:
                    print(f"  {event.kind}: {event.message}")

        watcher = asyncio.create_task(follow())
        try:
            return await hub.wait_goal(status.id, timeout=timeout)
        finally:
            watcher.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the goal; 0 when it is done."""
    parser = argparse.ArgumentParser(description="Run a goal on a running hub.")
    parser.add_argument(
        "--url",
        default=None,
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL, else the hub.json of clawhub up)",
    )
    parser.add_argument("--plan", type=Path, help="YAML/JSON plan file (no model needed)")
    parser.add_argument("--text", default="Shout two sentences and summarize them")
    parser.add_argument("--budget", type=float, default=None, help="most USD to spend")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan) if args.plan else None
        final = asyncio.run(run_goal(args.url, args.text, plan, args.budget, args.timeout))
    except (SDKError, OSError, ValueError) as exc:
        print(f"run_goal: {exc}")
        return 1
    print(f"{final.state}: {final.tasks_done}/{final.tasks_total} tasks, ${final.usage.cost:.4f}")
    if final.error:
        print(f"error: {final.error}")
    if final.deliverable is not None:
        print("deliverable: " + json.dumps(final.deliverable, sort_keys=True))
    return 0 if final.state == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
