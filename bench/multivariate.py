"""Multivariate drift: the domain classifier on a correlation flip and on a null stream.

``python -m bench.multivariate [--quick] [--json]``

The reference: x1, x2 jointly normal with correlation +0.8, x3 and x4 independent normals, a
categorical c; its domain classifier gets a reservoir of 5,000 reference rows as codes (what
the reference profile's row sample gives). A window holds 320 current rows (5 steps × 64
sampled rows of one partition, the defaults), drawn afresh for every window:

- **correlation flip**: x1, x2 with correlation −0.8, every marginal unchanged. Per run,
  windows until the first flag (1: the first window after the change); per-feature PSI on the
  same windows (the project's PSI rule) stays quiet, which is why the check exists.
- **null stream**: the reference distribution itself, over 2,000 windows (``--quick``: 200):
  the false-alarm rate with its 95 % Clopper–Pearson interval; the target is ≤ 1 per 1,000.

Also: milliseconds per window evaluation (median) and the calibration's cost.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._table import Record, Table, base_parser, clopper_pearson, emit
from stream_drift.pipeline.domain import DomainClassifier, sample_series, value_codes
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.stats.evaluate import evaluate_feature
from stream_drift.stats.psi import PSI

N_REFERENCE = 20_000
N_RESERVOIR = 5_000
WINDOW_ROWS = 320
RHO = 0.8
TARGET_FA_PER_1000 = 1.0
HORIZON = 10
"""Flipped windows watched per run before giving up (counted as HORIZON + 1)."""


class Settings:
    """Sizes of one run (full or ``--quick``)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.null_windows = 200 if quick else 2_000
        self.flip_runs = 5 if quick else 30
        self.calibration_splits = 24


def _draw(rng: np.random.Generator, n: int, rho: float) -> dict[str, list[Any]]:
    x = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], n)
    return {
        "x1": x[:, 0].tolist(),
        "x2": x[:, 1].tolist(),
        "x3": rng.normal(size=n).tolist(),
        "x4": rng.normal(2.0, 3.0, size=n).tolist(),
        "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
    }


def _codes(reference: ReferenceProfile, columns: dict[str, list[Any]]) -> npt.NDArray[np.int64]:
    layout = sample_series(reference)
    return np.stack([value_codes(reference, name, columns[name]) for name in layout], axis=1)


class _Psi:
    """The per-feature PSI verdicts of a window (the project's default rule)."""

    def __init__(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.psi = PSI()

    def any_drift(self, columns: dict[str, list[Any]]) -> bool:
        flagged = False
        for name, series in self.reference.series.items():
            current = series.empty().add(columns[name])
            result = evaluate_feature(name, series.histogram, current, [self.psi])
            flagged |= result.results["psi"].is_drift
        return flagged


def rows(quick: bool, seed: int = 20240601, settings: Settings | None = None) -> list[Record]:
    """The benchmark's records: one per (scenario, check)."""
    cfg = settings or Settings(quick)
    rng = np.random.default_rng(seed)
    reference = build_reference(_draw(rng, N_REFERENCE, RHO), model="bench")
    reservoir = _codes(reference, _draw(rng, N_RESERVOIR, RHO))
    classifier = DomainClassifier(reference, reservoir, calibration_splits=cfg.calibration_splits)
    start = time.perf_counter()
    threshold = classifier.threshold(WINDOW_ROWS)
    calibration_ms = (time.perf_counter() - start) * 1e3
    psi = _Psi(reference)
    out: list[Record] = []
    eval_ms: list[float] = []

    def judge(columns: dict[str, list[Any]], window_seed: int) -> tuple[bool, float]:
        t = time.perf_counter()
        result = classifier.evaluate(_codes(reference, columns), seed=window_seed)
        eval_ms.append((time.perf_counter() - t) * 1e3)
        assert result is not None
        return result.is_drift, result.auc

    # Correlation flip: windows until the first flag, and PSI on the same windows.
    first: list[int] = []
    flip_aucs: list[float] = []
    flip_windows = psi_flags = 0
    for run in range(cfg.flip_runs):
        for w in range(1, HORIZON + 2):
            if w > HORIZON:
                first.append(HORIZON + 1)
                break
            columns = _draw(rng, WINDOW_ROWS, -RHO)
            flagged, auc = judge(columns, run * 1000 + w)
            flip_aucs.append(auc)
            flip_windows += 1
            psi_flags += psi.any_drift(columns)
            if flagged:
                first.append(w)
                break
    flip_ms = statistics.median(eval_ms)
    out.append(
        _record(
            "correlation_flip", "domain_auc", flip_windows, len(first), statistics.median(flip_aucs)
        )
        | {
            "median_windows_to_flag": float(statistics.median(first)),
            "max_windows_to_flag": max(first),
            "threshold": threshold,
            "ms_per_window": flip_ms,
        }
    )
    out.append(
        _record("correlation_flip", "psi_any_feature", flip_windows, psi_flags, 0.0)
        | {"median_windows_to_flag": 0.0, "max_windows_to_flag": 0, "threshold": 0.0}
        | {"ms_per_window": 0.0}
    )
    # Null stream: the false-alarm rate.
    eval_ms.clear()
    alarms = 0
    null_aucs = []
    psi_alarms = 0
    for w in range(cfg.null_windows):
        columns = _draw(rng, WINDOW_ROWS, RHO)
        flagged, auc = judge(columns, 10**6 + w)
        alarms += flagged
        null_aucs.append(auc)
        psi_alarms += psi.any_drift(columns)
    null_ms = statistics.median(eval_ms)
    for check, flags, auc in (
        ("domain_auc", alarms, statistics.median(null_aucs)),
        ("psi_any_feature", psi_alarms, 0.0),
    ):
        out.append(
            _record("null", check, cfg.null_windows, flags, auc)
            | {"median_windows_to_flag": 0.0, "max_windows_to_flag": 0}
            | {"threshold": threshold if check == "domain_auc" else 0.0}
            | {"ms_per_window": null_ms if check == "domain_auc" else 0.0}
        )
    for r in out:
        r["calibration_ms"] = calibration_ms if r["check"] == "domain_auc" else 0.0
        r["n_rows"] = WINDOW_ROWS
    return out


def _record(scenario: str, check: str, windows: int, flagged: int, auc: float) -> Record:
    lo, hi = clopper_pearson(flagged, windows)
    return {
        "scenario": scenario,
        "check": check,
        "windows": windows,
        "flagged": flagged,
        "rate_per_1000": 1000.0 * flagged / windows,
        "ci_low_per_1000": 1000.0 * lo,
        "ci_high_per_1000": 1000.0 * hi,
        "median_auc": auc,
    }


def table(records: Sequence[Record]) -> Table:
    """The records as one table (``bench.concept`` prints it too)."""
    t = Table(
        f"Multivariate drift: domain classifier, {WINDOW_ROWS} rows per window "
        f"(load {', '.join(f'{x:.2f}' for x in os.getloadavg())})",
        [
            "scenario",
            "check",
            "windows",
            "flagged",
            "per 1,000 [95 % CI]",
            "median AUC",
            "threshold",
            "windows to flag (median / max)",
            "ms / window",
        ],
        ["l", "l", "r", "r", "r", "r", "r", "r", "r"],
        notes=[
            "correlation_flip: x1, x2 correlation +0.8 -> -0.8, marginals unchanged; a run "
            f"watches {HORIZON} windows (not flagged: {HORIZON + 1}). psi_any_feature: a "
            "window where PSI flags any feature (the per-series rule, for comparison).",
            f"null: the reference distribution; target <= {TARGET_FA_PER_1000:g} false alarm "
            "per 1,000 windows (Clopper-Pearson interval).",
            "threshold calibration (reference-vs-reference splits, once per model version and "
            f"row bucket): {max(float(r['calibration_ms']) for r in records):.0f} ms.",
        ],
    )
    for r in records:
        domain = r["check"] == "domain_auc"
        flag = (
            f"{r['median_windows_to_flag']:g} / {r['max_windows_to_flag']}"
            if r["scenario"] == "correlation_flip" and domain
            else "-"
        )
        t.add(
            str(r["scenario"]),
            str(r["check"]),
            f"{r['windows']:,}",
            f"{r['flagged']:,}",
            f"{r['rate_per_1000']:.1f} [{r['ci_low_per_1000']:.1f}, {r['ci_high_per_1000']:.1f}]",
            f"{r['median_auc']:.3f}" if domain else "-",
            f"{r['threshold']:.3f}" if domain else "-",
            flag,
            f"{r['ms_per_window']:.1f}" if domain else "-",
        )
    return t


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table (or JSON with ``--json``)."""
    parser = base_parser("python -m bench.multivariate", "Domain classifier: flip and null.")
    parser.add_argument(
        "--null-windows", type=int, default=None, help="null-stream windows (default 2,000)"
    )
    args = parser.parse_args(argv)
    cfg = Settings(args.quick)
    if args.null_windows:
        cfg.null_windows = args.null_windows
    start = time.perf_counter()
    records = rows(args.quick, args.seed, cfg)
    elapsed = round(time.perf_counter() - start, 1)
    null = next(r for r in records if r["scenario"] == "null" and r["check"] == "domain_auc")
    flip = next(r for r in records if r["scenario"] == "correlation_flip")
    passed = float(null["rate_per_1000"]) <= TARGET_FA_PER_1000
    summary = (
        f"SUMMARY: correlation flip flagged after {flip['median_windows_to_flag']:g} window(s) "
        f"(median AUC {flip['median_auc']:.3f}, threshold {flip['threshold']:.3f}); null "
        f"false alarms {null['flagged']}/{null['windows']:,} = {null['rate_per_1000']:.1f} "
        f"per 1,000 (target <= {TARGET_FA_PER_1000:g}: {'PASS' if passed else 'FAIL'}; "
        f"{elapsed} s)."
    )
    emit(
        benchmark="bench.multivariate",
        tables=[table(records)],
        records={"multivariate": records},
        meta={
            "quick": cfg.quick,
            "seed": args.seed,
            "null_windows": cfg.null_windows,
            "flip_runs": cfg.flip_runs,
            "loadavg_1m": os.getloadavg()[0],
            "python": platform.python_version(),
            "elapsed_s": elapsed,
        },
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
