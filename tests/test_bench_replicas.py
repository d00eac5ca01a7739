"""The replicas benchmark runs end to end in its quick form (one kill, small groups) against
real replica processes, a real nats-server and real PostgreSQL, and writes sane JSON. As in
tests/test_bench.py, no timing is asserted: benchmarks measure, tests do not. What is
asserted is what must hold whatever the machine: every task done, none run twice, each
throughput against the one-replica run of the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "CLAWHUB_TEST_POSTGRES_URL"


def test_quick_replicas_run_writes_sane_json(tmp_path: Path) -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{PG_ENV} not set: replicas share a PostgreSQL store")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "replicas", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BENCH_POSTGRES_URL": url},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["scenarios"] == ["replicas"]
    rows = report["rows"]
    for row in rows:
        assert row["scenario"] == "replicas"
        assert not row["note"].startswith(("missing", "error")), row
        assert row["value"] is not None, row
    names = [r["name"] for r in rows]
    assert names[:3] == [
        "kill -9 of the active replica → standby active",
        "kill -9 of the active replica → first task matched by the new one",
        "tasks lost or run twice over 1 kills",
    ]
    active, matched, lost = rows[:3]
    for row in (active, matched):
        assert row["value"] > 0 and row["baseline"] == 3000.0  # against the lease TTL
        assert abs(row["ratio"] - row["value"] / row["baseline"]) < 1e-9
    assert matched["value"] >= active["value"]  # nothing is matched before it is active
    assert active["ok"] in (True, False)  # the 5 s target is judged, whichever way it went
    assert lost["value"] == 0, lost  # every task done, none run twice
    throughput = rows[3:]
    assert [r["name"].split(",")[1].strip() for r in throughput] == [
        "1 replica",
        "2 replicas",
        "3 replicas",
    ]
    one = throughput[0]["value"]
    for row in throughput:
        assert row["value"] > 0 and row["baseline"] == one
        assert abs(row["ratio"] - row["value"] / one) < 1e-9
    assert "throughput, 3 replicas" in proc.stdout  # the table was printed
