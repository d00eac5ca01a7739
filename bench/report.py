"""``python -m bench.report [bench-results.json]``: the results as a Markdown table (the one
in the README)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .__main__ import fmt


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-results.json")
    report = json.loads(path.read_text())
    m = report["machine"]
    print(f"Measured on {m['cpus']} cores ({m['cpu']}), Python {m['python']}, {m['platform']};")
    print(f"whole suite {report['seconds']:.0f} s{' (--quick)' if report['quick'] else ''}.\n")
    print("| scenario | measure | value | baseline (same run) | ratio | target | result |")
    print("|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        result = {True: "pass", False: "**miss**", None: ""}[r["ok"]]
        if r["value"] is None:
            result = "missing" if r["note"].startswith("missing") else "error"
        base = f"{fmt(r['baseline'])} ({r['baseline_name']})" if r["baseline"] is not None else ""
        ratio = f"{r['ratio']:.3g}x" if r["ratio"] is not None else ""
        name = r["name"] + (f" ({r['note']})" if r["note"] and r["note"] != "baseline" else "")
        if r["note"] == "baseline":
            name += " — baseline"
        value = fmt(r["value"], r["unit"])
        print(
            f"| {r['scenario']} | {name} | {value} | {base} | {ratio} | {r['target']} | {result} |"
        )


if __name__ == "__main__":
    main()
