"""The groups benchmark runs end to end in its quick form against real ``clawhub up``
processes (one, and ``--workers 2`` and ``4``), their embedded nats-server and SQLite, and
writes sane JSON. As in tests/test_bench.py, no timing is asserted: what must hold whatever
the machine is that every case ran every task (the scenario raises otherwise), each rate is
against the one-group run of the same run, and the CPU of each part was measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_quick_groups_run_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "groups", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=800,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["scenarios"] == ["groups"]
    rows = report["rows"]
    for row in rows:
        assert row["scenario"] == "groups"
        assert not row["note"].startswith(("missing", "error")), row
        assert row["value"] is not None and row["value"] > 0, row
    *runs, ceiling = rows
    assert [r["name"].split(",")[1:3] for r in runs] == [
        [" one group", " one process"],
        [" 4 groups", " one process"],
        [" 4 groups", " 2 workers"],
        [" 4 groups", " 4 workers"],
    ]
    one = runs[0]["value"]
    for row in runs:
        assert row["baseline"] == one
        assert abs(row["ratio"] - row["value"] / one) < 1e-9
        cpu = row["extra"]["cpu_us_per_task"]
        assert set(cpu) == {"hub", "nats-server", "agents", "bench"}
        assert cpu["hub"] > 0 and cpu["agents"] > 0, cpu
    target = [r for r in runs if r["target"]]
    assert [r["target"] for r in target] == [">= 1.7x"]  # 2 workers: one per core here
    assert target[0]["ok"] is (target[0]["ratio"] >= 1.7)  # judged, whichever way it went
    assert ceiling["name"].startswith("ceiling of N workers")
    cpu, cores = runs[0]["extra"]["cpu_us_per_task"], ceiling["extra"]["cores"]
    here = max(1.0, cores * cpu["hub"] / sum(cpu.values()))  # from the one-group run's CPU
    alone = max(1.0, cores * cpu["hub"] / (cpu["hub"] + cpu["nats-server"]))
    assert abs(ceiling["value"] - here) < 0.02 * here, (ceiling, cpu)
    assert abs(ceiling["extra"]["agents_elsewhere"] - alone) < 0.02 * alone, (ceiling, cpu)
    assert "throughput, 4 groups, 2 workers" in proc.stdout  # the table was printed
