"""Smoke test of ``python -m bench.client --quick --json``: it runs and yields its table.

Run as a subprocess from the repository root, as documented (``bench`` is not installed);
the only benchmark smoke test that does (``tests/test_bench_smoke.py`` runs the others
in-process). It starts the embedded broker, hence the ``kafka`` mark.
Structure only, plus what must hold whatever the machine: against the embedded broker every
event is acknowledged and none dropped; with no broker every event is dropped, none sent.
Timings are never asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"target", "calls", "median_us", "p99_us", "max_us", "calls_per_s", "sent", "dropped"}


@pytest.mark.kafka
def test_client_bench_quick_json() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.client", "--quick", "--json", "--calls", "50"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["benchmark"] == "bench.client"
    assert doc["meta"]["quick"] is True
    assert doc["summary"].startswith("SUMMARY:")
    rows = {r["target"]: r for r in doc["tables"]["emit_cost"]}
    assert set(rows) == {"JSON encoding only", "embedded broker", "no broker (down)"}
    for row in rows.values():
        assert set(row) >= KEYS
        for key in KEYS - {"target"}:
            assert math.isfinite(row[key]) and row[key] >= 0, (row["target"], key)
        assert row["median_us"] <= row["p99_us"] <= row["max_us"]
    calls = doc["meta"]["calls"]
    assert (rows["embedded broker"]["sent"], rows["embedded broker"]["dropped"]) == (calls, 0)
    assert (rows["no broker (down)"]["sent"], rows["no broker (down)"]["dropped"]) == (0, calls)
