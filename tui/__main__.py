"""``python -m tui --url URL --name NAME [--skills a=0.8,b=0.5] [--group G]``: join a Claw
Group as a human participant. ``clawhub tui`` runs this with the hub's URL filled in."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from protocols import ClawHubError, is_identifier

from .app import ClawTui
from .model import parse_skills
from .session import GroupSession


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tui",
        description="Claw Hub TUI: join a Claw Group as a human participant.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("CLAWHUB_NATS_URL"),
        help="NATS URL of the hub (default: CLAWHUB_NATS_URL)",
    )
    parser.add_argument("--name", default=os.environ.get("USER", "human"), help="your display name")
    parser.add_argument("--id", default=None, help="your participant id (default: from the name)")
    parser.add_argument(
        "--skills", default="", help="what you can do, with levels: review=0.9,writing=0.6"
    )
    parser.add_argument("--capacity", type=int, default=3, help="tasks you hold at once")
    parser.add_argument("--group", default=os.environ.get("CLAWHUB_GROUP", "default"))
    parser.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        help="seconds between full reads of the group (the event stream updates it between)",
    )
    parser.add_argument("--log", default=None, help="write the log to this file")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no hub URL: pass --url or set CLAWHUB_NATS_URL (or use `clawhub tui`)")
    try:
        args.skills = parse_skills(args.skills)
    except ValueError as exc:
        parser.error(f"--skills: {exc}")
    if args.id is not None and not is_identifier(args.id):
        parser.error(f"--id {args.id!r}: letters, digits, - and _ only")
    if not is_identifier(args.group):
        parser.error(f"--group {args.group!r}: letters, digits, - and _ only")
    if args.capacity < 1:
        parser.error("--capacity must be at least 1")
    return args


async def run(args: argparse.Namespace) -> int:
    """Join, run the app until it quits, leave."""
    session = GroupSession(
        args.url,
        args.name,
        skills=args.skills,
        capacity=args.capacity,
        id=args.id,
        group=args.group,
        refresh=args.refresh,
    )
    try:
        await session.start()
    except ClawHubError as exc:
        print(f"error: cannot join the group at {args.url}: {exc}", file=sys.stderr)
        return 1
    app = ClawTui(session.model, session)
    loop = asyncio.get_running_loop()
    # a closed terminal (SIGHUP) or a kill (SIGTERM) is a person leaving, not a crash: end
    # the app, then leave the group below, so the hub records agent.left, not agent.lost
    hangups = [getattr(signal, n) for n in ("SIGHUP", "SIGTERM") if hasattr(signal, n)]
    for sig in hangups:
        loop.add_signal_handler(sig, app.exit)
    try:
        await app.run_async()
    finally:
        for sig in hangups:
            loop.remove_signal_handler(sig)
        await session.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    # the screen belongs to the app: log lines go to a file (or nowhere)
    logging.basicConfig(
        level=logging.INFO if args.log else logging.WARNING,
        filename=args.log or os.devnull,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
