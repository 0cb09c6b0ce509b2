"""Smoke test of the benchmarks: each runs once and yields every table, all finite, printed
both as one JSON document and as aligned Markdown.

Each benchmark's ``main(["--quick"])`` runs in-process with its sizes shrunk below
``--quick`` (one timed repeat, a reference of 10,000 values, a few hundred windows): every
code path runs, nothing is measured. Its call of :func:`bench._table.emit` is captured, so
the one run's tables and records are rendered both ways with the real ``emit``. Structure
only: timings and detection figures are never asserted (the machine is shared and noisy; the
numbers are a report, not a contract). ``tests/test_bench_client_smoke.py`` runs a benchmark
as ``python -m bench.<name>``, as documented.
"""

from __future__ import annotations

import importlib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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
# Smaller than --quick, still enough for every table row (quantiles, intervals, a delay):
# the sizes a benchmark's Settings holds, then its module-level sizes.
TINY = {
    "bench.stats": {"repeats": 1, "batches": 2, "target_s": 1e-4},
    "bench.detection": {
        "fa_windows": 200,
        "fa_windows_target": 200,
        "runs": 5,
        "horizon": 5,
        "verify_first": 2,
        "verify_flagged": 2,
    },
}
TINY_CONSTANTS = {
    "bench.stats": {"N_REFERENCE": 10_000, "N_FEATURES": 2},
    "bench.detection": {"N_REFERENCE": 10_000},
}


def _run_once(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """Run ``bench.<name>`` once in-process at :data:`TINY` sizes: (JSON doc, text output)."""
    monkeypatch.syspath_prepend(str(ROOT))  # bench is not installed: run from the repo root
    table = importlib.import_module("bench._table")
    module: ModuleType = importlib.import_module(name)
    base = module.Settings

    class Tiny(base):
        def __init__(self, quick: bool) -> None:
            super().__init__(quick)
            vars(self).update(TINY[name])

    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(module, "Settings", Tiny)
    for constant, value in TINY_CONSTANTS[name].items():
        monkeypatch.setattr(module, constant, value)
    monkeypatch.setattr(module, "emit", lambda **kwargs: emitted.append(kwargs))
    assert module.main(["--quick"]) == 0
    [kwargs] = emitted
    assert kwargs["as_json"] is False
    outputs = []
    for as_json in (True, False):
        out = io.StringIO()
        table.emit(**{**kwargs, "as_json": as_json, "out": out})
        outputs.append(out.getvalue())
    return json.loads(outputs[0]), outputs[1]


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


def _check_markdown(text: str, n_tables: int) -> None:
    """The text output: ``n_tables`` aligned Markdown tables, the summary on the last line."""
    lines = text.splitlines()
    assert lines[-1].startswith("SUMMARY:")
    tables: list[list[str]] = []
    previous = ""
    for line in lines:
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    assert len(tables) == n_tables
    for table in tables:
        assert len(table) >= 3
        assert set(table[1]) <= set("|:- "), "second line is the Markdown alignment row"
        assert len({len(line) for line in table}) == 1, "columns are padded to one width"


def test_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    doc, text = _run_once("bench.stats", monkeypatch)
    assert doc["benchmark"] == "bench.stats"
    _check_tables(doc, STATS_TABLES)
    costs = doc["tables"]["statistic_cost"]
    for name in ("psi", "kl", "js", "ks", "chi2"):
        assert {r["bins"] for r in costs if r["statistic"] == name} == {20, 100}
    assert {r["window_n"] for r in doc["tables"]["ks_vs_raw"]} >= {1_000, 10_000}
    assert all(r["bound_holds"] for r in doc["tables"]["ks_vs_raw"])
    assert all(r["evaluate_us"] > 0 for r in costs)
    _check_markdown(text, len(STATS_TABLES))


def test_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    doc, text = _run_once("bench.detection", monkeypatch)
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
    assert doc["meta"]["checked_against_evaluate"] > 0, "windows checked against evaluate()"
    _check_markdown(text, len(DETECTION_TABLES))
