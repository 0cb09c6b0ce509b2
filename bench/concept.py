"""Concept drift with unchanged inputs: per-feature PSI stays quiet, the River detectors do not.

``python -m bench.concept [--quick] [--json] [--seed N]``

The stream is River's ``datasets.synth.SEA`` (three features uniform on [0, 10], label
``x0 + x1 > θ``, 10 % of labels flipped as noise). The model is the first concept's own
classification function (``x0 + x1 > 8``: variant 0), perfect but for the noise, so its error
rate is 10 %. At a known pair the stream switches to variant 2 (``θ = 7``): the features and
the model's predictions keep exactly their distribution, only the relation to the label moves,
and the error rate rises to 10 % + 7.5 % × 0.8 = 16 %.

- **(a) per-feature PSI**: a reference built from pre-change rows (``build_reference``, as
  ``stream-drift reference build`` does: x0, x1, x2 and the model's prediction), then each
  window of rows after the change evaluated with the project's PSI rule
  (``stats.evaluate.evaluate_feature``). Expected: quiet, which is why concept drift needs
  labels.
- **(b) detection delay** of every detector ``concept.detector`` can name, at River's default
  parameters, fed through :class:`~stream_drift.pipeline.concept.ConceptMonitor` (the worker's
  code): pairs from the change to the first detection, median over the seeds, and in seconds
  at a stated label rate (:data:`LABELS_PER_SECOND` labelled pairs per second); detections
  before the change are counted as false alarms.
- **(c) false alarms per 10,000 pairs** on a null stream (variant 0 throughout), with the 95 %
  Clopper–Pearson interval of the rate of pairs that triggered a detection; and µs per pair.

The multivariate benchmark (``bench.multivariate``: a correlation flip, the false-alarm rate
on a null stream) and the label join's long run (``bench.label_join``: exact outcome counts,
bounded state) are printed after these; :func:`main` prints the tables of :func:`sections` in
order.
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
from river.datasets import synth

from bench import label_join, multivariate
from bench._table import Record, Table, base_parser, clopper_pearson, emit
from stream_drift.config.quality import DETECTOR_NAMES, ConceptPolicy
from stream_drift.pipeline.concept import BINARY_DETECTORS, ConceptMonitor
from stream_drift.pipeline.reference import build_reference
from stream_drift.stats.evaluate import evaluate_feature
from stream_drift.stats.psi import PSI

NOISE = 0.1
"""Share of SEA labels flipped: the model's error rate before the change."""
BEFORE_VARIANT, AFTER_VARIANT = 0, 2
MODEL_THRESHOLD = 8.0
"""SEA variant 0's threshold: the model is ``x0 + x1 > 8``."""
LABELS_PER_SECOND = 10.0
"""Labelled pairs per second assumed to turn a delay in pairs into seconds."""
PSI_WINDOW = 2_000
"""Rows per window of the PSI check (a few minutes of a small model's traffic)."""


class Settings:
    """Sizes of one run (full or ``--quick``)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.seeds = 5 if quick else 7
        self.before = 2_000 if quick else 10_000
        self.horizon = 2_000 if quick else 10_000
        self.null_pairs = 4_000 if quick else 30_000
        self.reference_rows = 5_000 if quick else 20_000
        self.psi_windows = 3 if quick else 10
        self.detectors: tuple[str, ...] = DETECTOR_NAMES
        self.kswin_scale = 0.1 if quick else 0.2
        """KSWIN runs a KS test per pair (~0.5 ms): it gets this share of every size."""


def sea(variant: int, n: int, seed: int) -> tuple[dict[str, npt.NDArray[Any]], npt.NDArray[Any]]:
    """``n`` rows of River's SEA: feature columns and labels."""
    rows = list(synth.SEA(variant=variant, noise=NOISE, seed=seed).take(n))
    columns = {f"x{i}": np.array([x[i] for x, _ in rows]) for i in range(3)}
    return columns, np.array([y for _, y in rows], dtype=bool)


def predict(columns: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """The model: the first concept's classification function."""
    return np.asarray(columns["x0"] + columns["x1"] > MODEL_THRESHOLD)


def errors_of(variant: int, n: int, seed: int) -> npt.NDArray[np.float64]:
    columns, labels = sea(variant, n, seed)
    return np.asarray(predict(columns) != labels, dtype=np.float64)


# ------------------------------------------------------------------------- (a) PSI
def psi_rows(cfg: Settings, seed: int) -> list[Record]:
    """Per-feature PSI of post-change windows against a pre-change reference."""
    ref_columns, _ = sea(BEFORE_VARIANT, cfg.reference_rows, seed)
    prediction = np.where(predict(ref_columns), "fraud", "ok")
    reference = build_reference(
        {**{k: v.tolist() for k, v in ref_columns.items()}, "prediction": prediction.tolist()},
        model="bench",
        prediction=("prediction",),
    )
    psi = PSI()
    # One stream after the change, cut into windows (a different seed: fresh rows).
    columns, labels = sea(AFTER_VARIANT, cfg.psi_windows * PSI_WINDOW, seed + 1)
    columns_all: dict[str, npt.NDArray[Any]] = {
        **columns,
        "prediction": np.where(predict(columns), "fraud", "ok"),
    }
    out: list[Record] = []
    for name, series in sorted(reference.series.items()):
        values, flagged, threshold = [], 0, float("nan")
        for w in range(cfg.psi_windows):
            window = columns_all[name][w * PSI_WINDOW : (w + 1) * PSI_WINDOW].tolist()
            current = series.empty().add(window)
            result = evaluate_feature(name, series.histogram, current, [psi]).results["psi"]
            values.append(result.value)
            threshold = result.threshold
            flagged += result.is_drift
        out.append(
            {
                "feature": name,
                "windows": cfg.psi_windows,
                "window_rows": PSI_WINDOW,
                "median_psi": statistics.median(values),
                "max_psi": max(values),
                "threshold": threshold,
                "flagged": flagged,
            }
        )
    # The model's error on the same rows: what moved.
    error_after = float(np.mean(predict(columns) != labels))
    for record in out:
        record["error_rate_after"] = error_after
    return out


def psi_table(records: Sequence[Record]) -> Table:
    t = Table(
        "(a) Per-feature PSI after the concept change (reference: rows before it)",
        ["feature", "windows × rows", "median PSI", "max PSI", "threshold", "flagged"],
        ["l", "r", "r", "r", "r", "r"],
        notes=[
            f"SEA variant {BEFORE_VARIANT} → {AFTER_VARIANT}, {NOISE:.0%} label noise; the "
            f"model's error rate after the change: {float(records[0]['error_rate_after']):.1%} "
            f"(before: {NOISE:.0%}). Inputs and predictions keep their distribution, so the "
            "per-feature statistics cannot see the change."
        ],
    )
    for r in records:
        t.add(
            str(r["feature"]),
            f"{r['windows']} × {int(r['window_rows']):,}",
            f"{float(r['median_psi']):.4f}",
            f"{float(r['max_psi']):.4f}",
            f"{float(r['threshold']):.4f}",
            f"{r['flagged']}/{r['windows']}",
        )
    return t


# -------------------------------------------------------------------- (b), (c) detectors
def _scaled(cfg: Settings, name: str, n: int) -> int:
    return max(1, int(n * cfg.kswin_scale)) if name == "kswin" else n


def detector_rows(cfg: Settings, seed: int) -> list[Record]:
    """Per detector: delay after the change (median over seeds), null false alarms, cost."""
    # The same error streams for every detector (KSWIN reads their beginnings).
    changes = [
        (
            errors_of(BEFORE_VARIANT, cfg.before, seed + 1000 * s),
            errors_of(AFTER_VARIANT, cfg.horizon, seed + 1000 * s + 1),
        )
        for s in range(cfg.seeds)
    ]
    nulls = [
        errors_of(BEFORE_VARIANT, cfg.null_pairs, seed + 7919 + 1000 * s) for s in range(cfg.seeds)
    ]
    out: list[Record] = []
    for name in cfg.detectors:
        policy = ConceptPolicy(detector=name)  # type: ignore[arg-type]
        before, horizon = _scaled(cfg, name, cfg.before), _scaled(cfg, name, cfg.horizon)
        delays: list[int] = []
        early = missed = 0
        elapsed = 0.0
        fed = 0
        for pre, post in changes:
            errors = np.concatenate([pre[-before:], post[:horizon]])
            monitor = ConceptMonitor(policy, binary_errors=True)
            start = time.perf_counter()
            hits = monitor.update(errors, np.arange(errors.size, dtype=np.float64))
            elapsed += time.perf_counter() - start
            fed += errors.size
            early += sum(h < before for h in hits)
            after = [int(h) - before for h in hits if h >= before]
            if after and after[0] < horizon:
                delays.append(after[0])
            else:  # counted as the horizon: a conservative median
                missed += 1
                delays.append(horizon)
        null_pairs = _scaled(cfg, name, cfg.null_pairs)
        alarms = 0
        for null in nulls:
            monitor = ConceptMonitor(policy, binary_errors=True)
            errors = null[:null_pairs]
            start = time.perf_counter()
            alarms += len(monitor.update(errors, np.arange(errors.size, dtype=np.float64)))
            elapsed += time.perf_counter() - start
            fed += errors.size
        total_null = null_pairs * cfg.seeds
        low, high = clopper_pearson(alarms, total_null)
        median_delay = float(statistics.median(delays))
        out.append(
            {
                "detector": name,
                "binary_only": name in BINARY_DETECTORS,
                "runs": cfg.seeds,
                "detected": cfg.seeds - missed,
                "missed": missed,
                "horizon": horizon,
                "median_delay_pairs": median_delay,
                "median_delay_seconds": median_delay / LABELS_PER_SECOND,
                "max_delay_pairs": float(max(delays)),
                "false_alarms_before_change": early,
                "null_pairs": total_null,
                "null_alarms": alarms,
                "fa_per_10k": alarms / total_null * 10_000,
                "fa_ci_low_per_10k": low * 10_000,
                "fa_ci_high_per_10k": high * 10_000,
                "us_per_pair": elapsed / fed * 1e6,
            }
        )
    return out


def detector_table(records: Sequence[Record], cfg: Settings) -> Table:
    t = Table(
        "(b) Detection delay after the change and (c) false alarms on a null stream",
        [
            "detector",
            "detected",
            "median delay (pairs)",
            f"median delay (s at {LABELS_PER_SECOND:g}/s)",
            "max delay",
            "early alarms",
            "null FA / 10k pairs [95 % CI]",
            "µs/pair",
        ],
        ["l", "r", "r", "r", "r", "r", "r", "r"],
        notes=[
            f"Error rate {NOISE:.0%} → ~16 % at a known pair; River's default parameters; "
            f"{cfg.before:,} pairs before the change, {cfg.horizon:,} watched after it, "
            f"{cfg.seeds} seeds (KSWIN: {cfg.kswin_scale:g} × every size, it runs a KS test "
            "per pair). A run without a detection within the horizon counts as the horizon in "
            "the median and the max. 'early alarms': detections before the change, all seeds "
            "together. DDM, EDDM, HDDM_A and HDDM_W take 0/1 errors only (classifiers)."
        ],
    )
    for r in records:
        # A median that is a missed run is only a lower bound.
        over = ">" if int(r["missed"]) * 2 > int(r["runs"]) else ""
        t.add(
            str(r["detector"]),
            f"{r['detected']}/{r['runs']}",
            f"{over}{float(r['median_delay_pairs']):,.0f}",
            f"{over}{float(r['median_delay_seconds']):,.0f}",
            f"{float(r['max_delay_pairs']):,.0f}",
            str(r["false_alarms_before_change"]),
            f"{float(r['fa_per_10k']):.2f} [{float(r['fa_ci_low_per_10k']):.2f}, "
            f"{float(r['fa_ci_high_per_10k']):.2f}]",
            f"{float(r['us_per_pair']):.2f}",
        )
    return t


Section = tuple[str, Table, list[Record]]
"""One printed table: its record name (JSON), the table, its records."""


def sections(cfg: Settings, seed: int) -> list[Section]:
    """The benchmark's tables, in print order."""
    psi = psi_rows(cfg, seed)
    detectors = detector_rows(cfg, seed)
    joint = multivariate.rows(cfg.quick)
    join = label_join.rows(label_join.Settings(cfg.quick), seed)
    return [
        ("psi_after_change", psi_table(psi), psi),
        ("detectors", detector_table(detectors, cfg), detectors),
        ("multivariate", multivariate.table(joint), joint),
        ("label_join", label_join.table(join), join),
    ]


def _summary(found: Sequence[Section], elapsed: float) -> str:
    by_name = {name: records for name, _, records in found}
    psi_flags = sum(int(r["flagged"]) for r in by_name["psi_after_change"])
    default = next(r for r in by_name["detectors"] if r["detector"] == "adwin")
    flip = next(
        r for r in by_name["multivariate"] if r["scenario"] != "null" and r["check"] == "domain_auc"
    )
    null = next(
        r for r in by_name["multivariate"] if r["scenario"] == "null" and r["check"] == "domain_auc"
    )
    return (
        f"SUMMARY: concept change with unchanged inputs: per-feature PSI flagged "
        f"{psi_flags} window(s); ADWIN (default) detected {default['detected']}/"
        f"{default['runs']} runs, median delay {float(default['median_delay_pairs']):,.0f} "
        f"pairs ({float(default['median_delay_seconds']):,.0f} s at {LABELS_PER_SECOND:g} "
        f"labels/s), {float(default['fa_per_10k']):.2f} false alarms per 10,000 null pairs"
        f"; correlation flip with unchanged marginals: the domain classifier flagged "
        f"{flip['flagged']}/{flip['windows']} windows "
        f"(median AUC {float(flip['median_auc']):.3f}), "
        f"{float(null['rate_per_1000']):.2f} false alarms per 1,000 null windows "
        f"(95 % CI {float(null['ci_low_per_1000']):.2f}–{float(null['ci_high_per_1000']):.2f}) "
        f"({elapsed} s)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables (or JSON with ``--json``)."""
    parser = base_parser(
        "python -m bench.concept", "Concept drift: PSI quiet, River detectors' delays."
    )
    args = parser.parse_args(argv)
    cfg = Settings(args.quick)
    start = time.perf_counter()
    found = sections(cfg, args.seed)
    elapsed = round(time.perf_counter() - start, 1)
    load = os.getloadavg()
    emit(
        benchmark="bench.concept",
        tables=[t for _, t, _ in found],
        records={name: records for name, _, records in found},
        meta={
            "quick": cfg.quick,
            "seed": args.seed,
            "seeds": cfg.seeds,
            "python": platform.python_version(),
            "cpus": os.cpu_count() or 0,
            "loadavg": " ".join(f"{x:.2f}" for x in load),
        },
        summary=_summary(found, elapsed),
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
