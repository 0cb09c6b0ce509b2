"""Smoke test of the benchmarks: ``--quick --json`` runs and yields every table, all finite.

Each benchmark runs as ``python -m bench.<name>`` in a subprocess from the repository root,
exactly as documented (``bench`` is not an installed package, so it is not importable from
the test process). Structure only: timings and detection figures are never asserted (the
machine is shared and noisy; the numbers are a report, not a contract).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

STATS_TABLES = {
    "histogram_update": ["input", "add_ns_per_event", "assign_ns_per_value", "events_per_second"],
    "statistic_cost": ["statistic", "bins", "evaluate_us"],
    "ks_vs_raw": ["window_n", "ks_2samp_ms", "ks_evaluate_us", "ratio", "d_exact", "d_binned"],
}
DETECTION_TABLES = {
    "false_alarms": ["kind", "n", "rule", "windows", "rate_per_1000", "ci_low_per_1000"],
    "psi_null_calibration": ["kind", "n", "psi_mean", "psi_q999", "psi_threshold"],
    "detection_delay": ["scenario", "n", "rule", "median_windows", "p90_windows"],
    "targets": ["target", "limit", "measured", "passed"],
}


def _run(module: str, *args: str) -> str:
    """Stdout of ``python -m module args`` run from the repository root (exit code 0)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run_json(module: str) -> Any:
    return json.loads(_run(module, "--json"))


def _check_tables(doc: Mapping[str, Any], expected: Mapping[str, list[str]]) -> None:
    assert set(doc["tables"]) == set(expected)
    for name, keys in expected.items():
        rows = doc["tables"][name]
        assert rows, f"table {name} is empty"
        for row in rows:
            assert set(keys) <= set(row), f"{name}: missing {set(keys) - set(row)}"
            for key, value in row.items():
                assert isinstance(value, str | bool | int | float), (name, key, value)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    assert math.isfinite(value), (name, key, value)
    assert isinstance(doc["summary"], str) and doc["summary"].startswith("SUMMARY:")
    assert doc["meta"]["quick"] is True


def test_stats_quick_json() -> None:
    doc = _run_json("bench.stats")
    assert doc["benchmark"] == "bench.stats"
    _check_tables(doc, STATS_TABLES)
    costs = doc["tables"]["statistic_cost"]
    for name in ("psi", "kl", "js", "ks", "chi2"):
        assert {r["bins"] for r in costs if r["statistic"] == name} == {20, 100}
    assert {r["window_n"] for r in doc["tables"]["ks_vs_raw"]} >= {1_000, 10_000}
    assert all(r["bound_holds"] for r in doc["tables"]["ks_vs_raw"])
    assert all(r["evaluate_us"] > 0 for r in costs)


def test_detection_quick_json() -> None:
    doc = _run_json("bench.detection")
    assert doc["benchmark"] == "bench.detection"
    _check_tables(doc, DETECTION_TABLES)
    cells = {(r["kind"], r["n"], r["rule"]) for r in doc["tables"]["false_alarms"]}
    for n in (100, 200, 1_000):
        for rule in ("psi_default", "psi_naive", "ks_default"):
            assert ("numeric", n, rule) in cells
        for rule in ("psi_default", "psi_naive", "chi2_default"):
            assert ("categorical", n, rule) in cells
    for row in doc["tables"]["false_alarms"]:
        assert row["ci_low_per_1000"] <= row["rate_per_1000"] <= row["ci_high_per_1000"]
    delays = {(r["scenario"], r["n"], r["rule"]) for r in doc["tables"]["detection_delay"]}
    for n in (200, 1_000):
        for scenario in ("mean_shift", "variance_x2"):
            for rule in ("psi_default", "psi_naive", "ks_default"):
                assert (scenario, n, rule) in delays
        for rule in ("psi_default", "psi_naive", "chi2_default"):
            assert ("category_shift", n, rule) in delays
    for row in doc["tables"]["detection_delay"]:
        assert 1 <= row["median_windows"] <= row["p90_windows"] <= row["horizon"] + 1
    targets = {r["target"] for r in doc["tables"]["targets"]}
    assert {
        "false_alarms_numeric_n200",
        "false_alarms_categorical_n200",
        "mean_shift_n200_median",
        "mean_shift_n1000_median",
        "mean_shift_n1000_p90",
    } <= targets


def test_text_output_is_aligned_markdown() -> None:
    lines = _run("bench.detection").splitlines()
    assert lines[-1].startswith("SUMMARY:")
    tables: list[list[str]] = []
    previous = ""
    for line in lines:
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    assert len(tables) == 4
    for table in tables:
        assert len(table) >= 3
        assert set(table[1]) <= set("|:- "), "second line is the Markdown alignment row"
        assert len({len(line) for line in table}) == 1, "columns are padded to one width"
