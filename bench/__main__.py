"""``python -m bench [--quick] [--only SCENARIO ...] [--json PATH]``: run the benchmark
suite, print a table and write JSON. Every figure comes with the baseline measured in the
same run, so the ratios hold on any machine."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .common import Row

SCENARIOS = (
    "throughput",
    "latency",
    "matching",
    "recovery",
    "swarm",
    "footprint",
    "identity",
    "replicas",
    "groups",
)
#: Longest a scenario may take (seconds) before it is reported as an error.
SCENARIO_TIMEOUT = 600


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


async def run_all(names: list[str], quick: bool) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            rows += await asyncio.wait_for(module.run(quick), SCENARIO_TIMEOUT)
        except TimeoutError:
            rows.append(Row(name, "scenario", None, "", note=f"error: over {SCENARIO_TIMEOUT}s"))
        except Exception as exc:
            traceback.print_exc()
            rows.append(Row(name, "scenario", None, "", note=f"error: {type(exc).__name__}: {exc}"))
        print(f"   {name} took {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    return rows


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Claw Hub benchmarks", show_lines=False)
    for col in ("scenario", "measure", "value", "baseline", "ratio", "target", "result"):
        t.add_column(col, justify="right" if col in ("value", "ratio") else "left")
    for r in rows:
        result = {True: "[green]pass[/]", False: "[red]miss[/]", None: ""}[r.ok]
        if r.value is None:
            result = "[yellow]missing[/]" if r.note.startswith("missing") else "[red]error[/]"
        base = f"{fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else ""
        ratio = f"{r.ratio:.3g}x" if r.ratio is not None else ""
        name = r.name + (f" [dim]{r.note}[/]" if r.note else "")
        t.add_row(r.scenario, name, fmt(r.value, r.unit), base, ratio, r.target, result)
    Console(width=200).print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run this scenario (repeatable)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    names = args.only or list(SCENARIOS)
    started = time.time()
    rows = asyncio.run(run_all(names, args.quick))
    table(rows)
    report = {
        "machine": machine(),
        "quick": args.quick,
        "started": started,
        "seconds": round(time.time() - started, 1),
        "scenarios": names,
        "rows": [r.as_dict() for r in rows],
    }
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
