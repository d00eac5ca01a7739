"""The benchmark suite runs end to end (a smoke run, small sizes): it measures against real
components and writes the JSON the README's table comes from. No timing is asserted here:
benchmarks measure, tests do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_matching_run_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "matching", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["scenarios"] == ["matching"]
    assert report["machine"]["cpus"] >= 1
    rows, (board,) = report["rows"][:3], report["rows"][3:]
    assert [r["name"] for r in rows] == [
        "cost per assignment, 100 agents",
        "cost per assignment, 1,000 agents",
        "cost per assignment, 10,000 agents",
    ]
    assert board["name"].startswith("CPU per task, the board alone"), board
    assert board["unit"] == "µs" and board["value"] > 0 and board["baseline"] is None, board
    for row in rows:
        assert row["scenario"] == "matching"
        assert row["value"] is not None and row["value"] > 0, row
        assert row["baseline"] == rows[0]["value"]
        assert abs(row["ratio"] - row["value"] / row["baseline"]) < 1e-9
        assert not row["note"].startswith(("missing", "error")), row
    assert rows[-1]["ok"] in (True, False)  # a target is judged, whichever way it went
    assert "cost per assignment, 10,000 agents" in proc.stdout  # the table was printed
