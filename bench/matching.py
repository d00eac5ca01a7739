"""Scenario 3, matching scale: the hub's own matcher (``Board.next_offers``: candidates,
hard filters, scores, the assignment's bookkeeping), in process, with 100, 1,000 and 10,000
participants registered through the board's normal register path. Every participant has
three of 50 skills at random levels and a capacity of 2; every task needs one skill at a
minimum level. Median cost per assignment over rounds of 100 tasks, against the cost with
100 participants measured in the same run (rounds interleaved). Also the board alone
through a task's whole lifecycle (submit, match, push on credit, result, done) in CPU per
task, with no bus, codec or store: the part of the hub's CPU per task that is its own
Python bookkeeping."""

from __future__ import annotations

import gc
import random
import statistics
import time
from pathlib import Path
from tempfile import mkdtemp

from clawhub.board import Board, Offer
from clawhub.runtime.gc import tune_gc
from clawhub.settings import HubSettings
from clawhub.store import Row as StoreRow
from protocols import AgentProfile, Cancel, Event, Register, Result, TaskSpec

from .common import Row

S = "matching"
SKILLS = [f"skill{i}" for i in range(50)]


class NullSink:
    """The hub's side of the board, doing nothing: only the matcher is measured."""

    def write(self, row: StoreRow) -> None:
        pass

    def publish(self, event: Event) -> None:
        pass

    def send_cancel(self, agent_id: str, message: Cancel) -> None:
        pass

    def wake(self) -> None:
        pass


def board_with(agents: int, seed: int = 7, *, credit: bool = False) -> Board:
    rnd = random.Random(seed)
    settings = HubSettings(nats_url="nats://unused", data_dir=Path(mkdtemp(prefix="bench-m-")))
    board = Board("default", settings, NullSink(), "hub-bench")
    for i in range(agents):
        skills = {s: round(rnd.uniform(0.3, 1.0), 2) for s in rnd.sample(SKILLS, 3)}
        profile = AgentProfile(id=f"a{i}", name=f"a{i}", skills=skills, capacity=2)
        board.register(Register(profile=profile, session="s1", credit=credit))
    return board


def one_round(board: Board, rnd: random.Random, first: int) -> tuple[float, int]:
    """Submit 100 one-skill tasks, time ``next_offers``, then finish every offer (untimed,
    so loads stay alike from round to round). (seconds, assignments)."""
    specs = [
        TaskSpec(id=f"t{first + i}", title="t", skills={rnd.choice(SKILLS): 0.3})
        for i in range(100)
    ]
    board.submit(specs)
    t = time.perf_counter()
    offers = board.next_offers(time.monotonic())
    spent = time.perf_counter() - t
    for offer in offers:
        board.offer_accepted(offer.task.id, offer.attempt, offer.agent_id)
    take_results(board, offers)
    return spent, len(offers)


def take_results(board: Board, offers: list[Offer]) -> None:
    """Each offered attempt's result (no output), from the participant it went to."""
    for offer in offers:
        board.result(
            Result(
                task_id=offer.task.id,
                attempt=offer.attempt,
                agent_id=offer.agent_id,
                session=board.agents[offer.agent_id].session,
                output=None,
            )
        )


def costs(sizes: tuple[int, ...], rounds: int) -> dict[int, float]:
    """Median cost per assignment (s) of each size, the sizes' rounds interleaved so that
    the machine's other load falls on all of them alike."""
    boards = {n: board_with(n) for n in sizes}
    rnds = {n: random.Random(11) for n in sizes}
    per_round: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(rounds + 3):
        for n in sizes:
            spent, made = one_round(boards[n], rnds[n], r * 100)
            if r >= 3 and made:  # three rounds warm up
                per_round[n].append(spent / made)
    return {n: statistics.median(v) for n, v in per_round.items()}


def lifecycle_round(board: Board, first: int, skills: list[str]) -> tuple[float, int]:
    """100 one-skill tasks (of ``skills``, which some participant has) through the board on
    credit: submitted, pushed (assigned and running at once, as the hub does for SDK
    agents), their results taken (done, nothing to validate). (CPU seconds, tasks done)."""
    rnd = random.Random(first)
    t = time.process_time()
    board.submit(
        [
            TaskSpec(id=f"l{first + i}", title="t", skills={rnd.choice(skills): 0.3})
            for i in range(100)
        ]
    )
    offers = board.next_offers(time.monotonic())
    take_results(board, offers)
    return time.process_time() - t, len(offers)


def lifecycle_cost(rounds: int) -> float:
    """Median CPU seconds per task of ``lifecycle_round`` with 100 credit agents, the
    collector set up as the hub's process sets it (``tune_gc``), restored afterwards."""
    board = board_with(100, credit=True)
    held = sorted({skill for a in board.agents.values() for skill in a.profile.skills})
    threshold = gc.get_threshold()
    tune_gc()
    try:
        per_task = []
        for r in range(rounds + 3):
            spent, done = lifecycle_round(board, r * 100, held)
            if r >= 3 and done:
                per_task.append(spent / done)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
    return statistics.median(per_task)


async def run(quick: bool) -> list[Row]:
    sizes = (100, 1000, 10_000)
    measured = costs(sizes, 10 if quick else 40)
    base = measured[100]
    rows = []
    for n, cost in measured.items():
        last = n == sizes[-1]
        rows.append(
            Row(
                S,
                f"cost per assignment, {n:,} agents",
                cost * 1e6,
                "µs",
                base * 1e6,
                "100 agents",
                cost / base,
                "<= 1.5x" if last else "",
                cost / base <= 1.5 if last else None,
            )
        )
    rows.append(
        Row(
            S,
            "CPU per task, the board alone (100 credit agents: submit, match, push, result; "
            "no bus, codec or store)",
            lifecycle_cost(10 if quick else 40) * 1e6,
            "µs",
            note="median of rounds of 100 tasks; the hub's own bookkeeping",
        )
    )
    return rows
