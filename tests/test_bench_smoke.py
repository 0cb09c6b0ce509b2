"""Smoke test of the benchmarks: each runs once and yields every table, all finite, printed
both as one JSON document and as aligned Markdown.

Each benchmark's ``main(["--quick"])`` runs in-process with its sizes shrunk below
``--quick`` (one timed repeat, a reference of 10,000 values, a few hundred windows): every
code path runs, nothing is measured. Its call of :func:`bench._table.emit` is captured, so
the one run's tables and records are rendered both ways with the real ``emit``. Structure
only: timings and detection figures are never asserted (the machine is shared and noisy; the
numbers are a report, not a contract). ``tests/test_bench_client_smoke.py`` runs a benchmark
as ``python -m bench.<name>``, as documented.

``bench.e2e``: its lean loop and the check that keeps it honest are tested without Kafka (a
loop that skips a batch, drops a value or bins one wrongly must be caught); ``--quick`` runs
against the embedded broker (``kafka`` mark) with one real worker, the scale rows' workers
stubbed (a worker start-up costs ~8 s each).
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
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
    "bench.multivariate": {"null_windows": 10, "flip_runs": 2, "calibration_splits": 4},
    "bench.label_join": {"predictions": 3_000, "checkpoints": 2},
    "bench.concept": {
        "seeds": 2,
        "before": 600,
        "horizon": 600,
        "null_pairs": 600,
        "reference_rows": 2_000,
        "psi_windows": 2,
        "kswin_scale": 0.2,
    },
}
TINY_CONSTANTS = {
    "bench.stats": {"N_REFERENCE": 10_000, "N_FEATURES": 2},
    "bench.detection": {"N_REFERENCE": 10_000},
    "bench.multivariate": {"N_REFERENCE": 5_000, "N_RESERVOIR": 1_000},
    "bench.label_join": {"TTL": 10.0, "MEAN_DELAY": 5.0},
    "bench.concept": {"PSI_WINDOW": 500},
}


def _shrink(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``bench.<name>`` with its :data:`TINY` sizes patched in."""
    monkeypatch.syspath_prepend(str(ROOT))  # bench is not installed: run from the repo root
    module: ModuleType = importlib.import_module(name)
    base = module.Settings

    class Tiny(base):
        def __init__(self, quick: bool) -> None:
            super().__init__(quick)
            vars(self).update(TINY[name])

    monkeypatch.setattr(module, "Settings", Tiny)
    for constant, value in TINY_CONSTANTS[name].items():
        monkeypatch.setattr(module, constant, value)
    return module


def _run_once(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """Run ``bench.<name>`` once in-process at :data:`TINY` sizes: (JSON doc, text output)."""
    module = _shrink(name, monkeypatch)
    table = importlib.import_module("bench._table")
    emitted: list[dict[str, Any]] = []
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


MULTIVARIATE_KEYS = [
    "scenario",
    "check",
    "windows",
    "flagged",
    "rate_per_1000",
    "ci_low_per_1000",
    "ci_high_per_1000",
    "median_auc",
    "median_windows_to_flag",
    "ms_per_window",
    "calibration_ms",
]


def test_multivariate(monkeypatch: pytest.MonkeyPatch) -> None:
    doc, text = _run_once("bench.multivariate", monkeypatch)
    assert doc["benchmark"] == "bench.multivariate"
    _check_tables(doc, {"multivariate": MULTIVARIATE_KEYS})
    cells = {(r["scenario"], r["check"]) for r in doc["tables"]["multivariate"]}
    assert cells == {
        (scenario, check)
        for scenario in ("correlation_flip", "null")
        for check in ("domain_auc", "psi_any_feature")
    }
    for row in doc["tables"]["multivariate"]:
        assert row["ci_low_per_1000"] <= row["rate_per_1000"] <= row["ci_high_per_1000"]
    null = [r for r in doc["tables"]["multivariate"] if r["scenario"] == "null"]
    assert all(r["windows"] == 10 for r in null)
    _check_markdown(text, 1)


# -- bench.e2e ---------------------------------------------------------------------------------

E2E_CEILING_KEYS = {
    "produce_events_per_s",
    "fetch_aiokafka_events_per_s",
    "fetch_librdkafka_events_per_s",
    "lean_aiokafka_events_per_s",
    "lean_librdkafka_events_per_s",
    "worker_stage1_events_per_s",
    "worker_committed_events_per_s",
    "ratio_worker_to_lean",
    "ratio_worker_to_fetch",
    "worker_aiokafka_events_per_s",
    "ratio_worker_aiokafka_to_lean_aiokafka",
}


def _e2e_modules(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Any]:
    monkeypatch.syspath_prepend(str(ROOT))
    return (
        importlib.import_module("bench.ceilings"),
        importlib.import_module("bench.scale"),
        importlib.import_module("bench.e2e"),
    )


def _lean_fixture(monkeypatch: pytest.MonkeyPatch, n: int) -> tuple[Any, Any, list[bytes], Any]:
    """A 10-feature scenario's reference and events, and a LeanLoop on its bin edges."""
    ceilings, scale, e2e = _e2e_modules(monkeypatch)
    scenario = scale.Scenario("t", "t", events=n)
    reference = scale.make_references(scenario, seed=3)[0]
    values, partitions = scale.make_events(scenario, seed=3, t0=1_700_000_000.0)
    backlog = scale.Backlog("-", "-", scenario, [reference], values, 0.0)
    loop = ceilings.LeanLoop(scenario.feature_names, e2e.lean_edges(backlog), scale.STEP_SECONDS)
    return e2e, loop, values, np.asarray(partitions, dtype=np.int64)


def test_lean_loop_counts_every_value_in_its_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    e2e, loop, values, partitions = _lean_fixture(monkeypatch, 2_500)
    for start in range(0, len(values), 1_000):  # batches, as a reader hands them over
        loop.add(values[start : start + 1_000], partitions[start : start + 1_000])
    e2e.check_lean(loop, values, bin_by_bin=True)  # np.histogram of json-read values
    # Per (partition, step): 4 partitions, 2.5 s of event time inside one or two 60-s steps.
    assert {p for p, _ in loop.counts["f0"]} == {0, 1, 2, 3}
    for name in loop.series:
        assert sum(int(c.sum()) for c in loop.counts[name].values()) == len(values)


def test_lean_check_catches_a_loop_that_skips_work(monkeypatch: pytest.MonkeyPatch) -> None:
    e2e, loop, values, partitions = _lean_fixture(monkeypatch, 1_200)
    loop.add(values[:1_000], partitions[:1_000])  # one batch never binned
    with pytest.raises(RuntimeError, match="decoded 1,000 events of 1,200"):
        e2e.check_lean(loop, values, bin_by_bin=False)
    loop.add(values[1_000:], partitions[1_000:])
    e2e.check_lean(loop, values, bin_by_bin=True)
    # Same totals, one value in the wrong bin: only the bin-by-bin check sees it.
    counts = next(iter(loop.counts["f3"].values()))
    moved = int(np.flatnonzero(counts)[0])
    counts[moved] -= 1
    counts[moved + 1] += 1
    e2e.check_lean(loop, values, bin_by_bin=False)
    with pytest.raises(RuntimeError, match=r"f3 counts differ from np\.histogram"):
        e2e.check_lean(loop, values, bin_by_bin=True)
    counts[moved + 1] -= 1  # a value dropped: the totals check sees it
    with pytest.raises(RuntimeError, match="counted 1,199 f3 values of 1,200"):
        e2e.check_lean(loop, values, bin_by_bin=False)


def test_scale_events_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    _, scale, _ = _e2e_modules(monkeypatch)
    keyed = scale.Scenario("k", "k", events=40, models=8, partitions=4, keyed=True)
    values, partitions = scale.make_events(keyed, seed=1, t0=0.0)
    events = [json.loads(v) for v in values]
    for event, partition in zip(events, partitions, strict=True):
        assert int(event["model"].removeprefix("bench")) % 4 == partition  # keyed by model
    mixed = scale.Scenario("c", "c", events=50, features=10, categorical_share=0.3)
    [event] = [json.loads(v) for v in scale.make_events(mixed, seed=1, t0=0.0)[0][:1]]
    kinds = {k: type(v).__name__ for k, v in event["features"].items()}
    assert sorted(kinds) == sorted(mixed.feature_names) and len(kinds) == 10
    assert sum(t == "str" for t in kinds.values()) == 3
    reference = scale.make_references(mixed, seed=1)[0]
    assert {n for n, s in reference.series.items() if s.kind == "categorical"} == {"c0", "c1", "c2"}


@pytest.mark.kafka
def test_e2e_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--quick`` in-process: real broker, ceilings and real workers (the ceiling run: one on
    librdkafka, then one on aiokafka over the same backlog); the scale rows' workers are
    replaced by a stub (each would cost a worker start-up), so their backlogs are produced and
    their rows rendered, not drained."""
    _, scale, e2e = _e2e_modules(monkeypatch)
    table = importlib.import_module("bench._table")
    real_drain = scale.drain
    calls: list[int] = []

    def drain(settings: Any, workdir: Path, n: int, timeout: float = 300) -> Any:
        calls.append(len(settings))
        if len(calls) <= 2:
            return real_drain(settings, workdir, n, timeout)
        per_worker = settings[0].topics.partitions.events // len(settings)
        return scale.Drain(n, n, n, 1.0, 1.5, 0.0, [per_worker] * len(settings))

    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(scale, "drain", drain)
    monkeypatch.setattr(e2e, "emit", lambda **kwargs: emitted.append(kwargs))
    assert e2e.main(["--quick", "--no-resources"]) == 0
    assert calls == [1, 1, 1, 2, 2, 1, 1, 1]
    [kwargs] = emitted
    out = io.StringIO()
    table.emit(**{**kwargs, "as_json": True, "out": out})
    doc = json.loads(out.getvalue())
    assert doc["meta"]["quick"] is True and doc["meta"]["cores"] >= 1
    assert doc["summary"].startswith("SUMMARY:")
    [ceiling] = doc["tables"]["ceilings"]
    assert set(ceiling) >= E2E_CEILING_KEYS
    assert ceiling["worker_accepted"] == ceiling["events"] == e2e.QUICK_EVENTS
    assert ceiling["worker_client"] == "librdkafka"
    assert ceiling["lean_checked_bin_by_bin"] is True
    for key in E2E_CEILING_KEYS:
        assert math.isfinite(ceiling[key]) and ceiling[key] > 0, key
    assert [r["scenario"] for r in doc["tables"]["scale"]] == [s.key for s in e2e.SCALE]
    assert set(doc["tables"]["machine"][0]) >= {"cores", "load_before", "load_after"}
    text = io.StringIO()
    table.emit(**{**kwargs, "out": text})
    _check_markdown(text.getvalue(), 2)


def test_ceilings_share_no_code_with_the_product() -> None:
    """``bench/ceilings.py`` (bare fetch, lean loop) imports nothing of ``stream_drift``."""
    tree = ast.parse((ROOT / "bench" / "ceilings.py").read_text(encoding="utf-8"))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    assert "msgspec" in imported and "numpy" in imported
    assert not [m for m in imported if m.split(".")[0] in {"stream_drift", "bench"}]


CONCEPT_TABLES = {
    "psi_after_change": ["feature", "windows", "median_psi", "max_psi", "threshold", "flagged"],
    "detectors": [
        "detector",
        "runs",
        "detected",
        "median_delay_pairs",
        "median_delay_seconds",
        "fa_per_10k",
        "fa_ci_low_per_10k",
        "fa_ci_high_per_10k",
        "us_per_pair",
    ],
}


def test_concept(monkeypatch: pytest.MonkeyPatch) -> None:
    _shrink("bench.multivariate", monkeypatch)  # bench.concept prints their tables too
    _shrink("bench.label_join", monkeypatch)
    doc, text = _run_once("bench.concept", monkeypatch)
    assert doc["benchmark"] == "bench.concept"
    _check_tables(doc, {**CONCEPT_TABLES, "multivariate": MULTIVARIATE_KEYS, "label_join": []})
    outcomes = [r for r in doc["tables"]["label_join"] if "outcome" in r]
    assert {r["outcome"] for r in outcomes} == {"joined", "expired", "orphan_label", "duplicate"}
    assert all(r["counted"] == r["expected"] > 0 for r in outcomes), outcomes
    from stream_drift.config.quality import DETECTOR_NAMES

    detectors = doc["tables"]["detectors"]
    assert [r["detector"] for r in detectors] == list(DETECTOR_NAMES)
    for row in detectors:
        assert row["fa_ci_low_per_10k"] <= row["fa_per_10k"] <= row["fa_ci_high_per_10k"]
        assert row["detected"] + row["missed"] == row["runs"] == 2
    features = {r["feature"] for r in doc["tables"]["psi_after_change"]}
    assert features == {"x0", "x1", "x2", "prediction"}
    assert "loadavg" in doc["meta"]
    _check_markdown(text, 4)
