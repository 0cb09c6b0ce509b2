"""Detection quality of the decision rules: false alarms without drift, delay after a change.

What is measured
----------------
1. **False alarms.** A reference of m = 100,000 values, drawn from N(0, 1) for a numeric
   feature and from six categories with probabilities 0.30, 0.25, 0.20, 0.10, 0.10, 0.05 for a
   categorical one, fixes the bin layout (:meth:`NumericBinning.fit
   <stream_drift.stats.NumericBinning.fit>` with its defaults: 100 fine, 10 coarse quantile
   bins; :meth:`CategoricalBinning.fit <stream_drift.stats.CategoricalBinning.fit>`) and the
   reference histogram. Windows of n = 100, 200 and 1,000 fresh values from the *same*
   distribution are judged against it; every alarm is false. The rate is given per 1,000
   window evaluations per feature, with a 95 % Clopper–Pearson interval, over 50,000 windows
   per cell (200,000 at n = 200, where the target is; 1,000 with ``--quick``), for

   - the default rule ``PSI()`` (false_alarm_rate = 0.0005, min_samples = 100),
   - ``KS()`` (numeric) and ``ChiSquare()`` (categorical) with their defaults,
   - the naive rule "PSI ≥ 0.1", ``PSI(threshold=0.1)``.

   A calibration table compares the PSI values seen with no drift to the χ² approximation
   the threshold comes from: the mean against ``(B − 1)(1/n + 1/m)``, the empirical 99.9 %
   quantile against the threshold, and the nominal ``false_alarm_rate`` whose threshold would
   equal that empirical quantile.
2. **Detection delay.** Tumbling windows start at the change point; the delay is the 1-based
   index of the first window the rule flags (1 = the first window after the change), for a
   0.5σ mean shift, a variance doubling (σ² 1 → 2) and a shift of 10 percentage points of
   probability from the most to the least frequent category, at n = 200 and 1,000, over
   seeded runs; each run's window stream is shared by all rules (common random numbers). A
   run with no flag within the horizon counts as ``horizon + 1`` (shown as ``>horizon``).
   Tumbling windows are independent, so the windows before the change do not matter; a
   change in the middle of a window would add up to one window.
3. **Targets**, marked PASS/FAIL: at most 1 false alarm per 1,000 evaluations per feature at
   n = 200 under the default rule (point estimate; the interval is shown); a 0.5σ shift
   detected within 1 window at n = 1,000 (median, and p90 as the stretch goal) and within 3
   windows at n = 200 (median). The default nominal rate (0.0005) is half the limit, because
   the χ² approximation is slightly anti-conservative on small windows (the calibration table
   shows by how much); the table also says whether the interval covers the limit.

How
---
Windows are never sampled as counts: raw values are drawn (numpy ``Generator``, seeded per
table cell and per run), binned by the real ``Binning.assign`` in one vectorised call per
chunk of windows, and split into per-window histograms with one ``bincount`` over
``window_index · n_bins + bin`` (checked once per cell against :meth:`Histogram.add
<stream_drift.stats.Histogram.add>`). Every window is judged by the real
:meth:`Statistic.evaluate <stream_drift.stats.Statistic.evaluate>` on its grid (coarse for
PSI and chi-square, fine for KS). Single-feature decisions: Benjamini–Hochberg across one
feature changes nothing.

Run ``python -m bench.detection [--quick] [--json] [--seed N]``; the exit code is always 0
(this is a report), the last line is a summary.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy
from scipy import stats as sps

from bench._table import Record, Table, base_parser, clopper_pearson, elapsed_since, emit
from stream_drift.stats import (
    KS,
    PSI,
    Binning,
    CategoricalBinning,
    ChiSquare,
    Histogram,
    NumericBinning,
    Statistic,
)
from stream_drift.stats.base import occupied

IntArray = npt.NDArray[np.int64]
Draw = Callable[[np.random.Generator, int], Any]
"""Raw values of a stream: ``draw(rng, size)``."""

N_REFERENCE = 100_000
FA_WINDOW_SIZES = (100, 200, 1_000)
DELAY_WINDOW_SIZES = (200, 1_000)
CATEGORIES = np.array(["A", "B", "C", "D", "E", "F"], dtype=object)
CATEGORY_PROBS = np.array([0.30, 0.25, 0.20, 0.10, 0.10, 0.05])
SHIFTED_PROBS = CATEGORY_PROBS + np.array([-0.10, 0.0, 0.0, 0.0, 0.0, 0.10])
TARGET_FA_PER_1000 = 1.0
TARGET_N = 200
"""Window size the false-alarm target is set at."""
CHUNK_VALUES = 1_000_000
"""Raw values binned per vectorised call."""
DELAY_BLOCK = 5
"""Windows drawn at a time in a delay run."""


class Settings:
    """Sizes of one run (full or ``--quick``)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        # No-drift windows per false-alarm cell; more at n = 200, where the target is.
        self.fa_windows = 1_000 if quick else 50_000
        self.fa_windows_target = 1_000 if quick else 200_000
        # Seeded runs per delay row, and windows watched after the change in each run.
        self.runs = 30 if quick else 200
        self.horizon = 20 if quick else 50
        # Per judge: the first windows, and the first flagged windows, that are also judged
        # by the real Statistic.evaluate (see Judge).
        self.verify_first = 5 if quick else 20
        self.verify_flagged = 5 if quick else 20


@dataclass(frozen=True)
class Rule:
    """A decision rule: one statistic instance and how the tables name it."""

    key: str
    label: str
    statistic: Statistic


DEFAULT = Rule("psi_default", "PSI default", PSI())
KS_DEFAULT = Rule("ks_default", "KS default", KS())
CHI2_DEFAULT = Rule("chi2_default", "chi2 default", ChiSquare())
NAIVE = Rule("psi_naive", "naive PSI ≥ 0.1", PSI(threshold=0.1))
RULES = (DEFAULT, KS_DEFAULT, CHI2_DEFAULT, NAIVE)


def _normal(loc: float, scale: float) -> Draw:
    def draw(rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
        return rng.normal(loc, scale, size)

    return draw


def _categorical(probs: npt.NDArray[np.float64]) -> Draw:
    def draw(rng: np.random.Generator, size: int) -> npt.NDArray[np.object_]:
        out: npt.NDArray[np.object_] = CATEGORIES[rng.choice(CATEGORIES.size, size, p=probs)]
        return out

    return draw


@dataclass
class Feature:
    """One feature's reference: layout, reference histogram and its no-drift stream."""

    kind: str
    binning: Binning
    reference: Histogram
    null: Draw
    coarse_matrix: IntArray = field(init=False)

    def __post_init__(self) -> None:
        onehot = np.zeros((self.binning.n_bins, self.binning.n_coarse), dtype=np.int64)
        onehot[np.arange(self.binning.n_bins), self.binning.coarse_map] = 1
        self.coarse_matrix = onehot

    @property
    def rules(self) -> list[Rule]:
        return [r for r in RULES if self.binning.kind in r.statistic.kinds]

    def reference_counts(self, statistic: Statistic) -> IntArray:
        """The reference on the statistic's grid."""
        if statistic.grid == "fine":
            return self.reference.counts
        return self.reference.coarse_counts()

    def windows(self, values: Any, n: int) -> tuple[IntArray, IntArray]:
        """Fine and coarse counts of consecutive windows of ``n`` raw values (rows)."""
        idx = self.binning.assign(values)
        if np.any(idx < 0):
            raise AssertionError("the benchmark streams have no missing values")
        n_windows, bins = idx.size // n, self.binning.n_bins
        keys = np.repeat(np.arange(n_windows, dtype=np.int64) * bins, n) + idx[: n_windows * n]
        fine = np.bincount(keys, minlength=n_windows * bins).reshape(n_windows, bins)
        return fine, fine @ self.coarse_matrix

    def check_windows(self, values: Any, n: int, fine: IntArray, coarse: IntArray) -> None:
        """The vectorised split agrees with :meth:`Histogram.add` on the first window."""
        first = Histogram(self.binning).add(values[:n])
        if not (
            np.array_equal(first.counts, fine[0])
            and np.array_equal(first.coarse_counts(), coarse[0])
        ):
            raise AssertionError("vectorised window counts differ from Histogram.add")


class Judge:
    """Decides windows exactly as :meth:`Statistic.evaluate` does, with cached thresholds.

    ``evaluate`` recomputes the threshold (a scipy quantile) and the p-value on every call,
    which costs 0.1–60 ms (``kstwo`` at small windows); the threshold only depends on the
    sample sizes and the number of occupied bins, so it is computed once per
    ``(n_current, dof)`` with the statistic's own :meth:`~Statistic.threshold_for`, and each
    window costs one call of the statistic's own :meth:`~Statistic.value`. To keep this honest,
    the first ``verify_first`` windows and the first ``verify_flagged`` flagged windows are
    also judged by the real ``evaluate``; any difference in value, threshold or verdict raises.
    """

    def __init__(
        self, rule: Rule, reference: IntArray, verify_first: int, verify_flagged: int
    ) -> None:
        self.rule = rule
        self.reference = reference
        self.n_reference = int(reference.sum())
        self.verify_first = verify_first
        self.verify_flagged = verify_flagged
        self.calls = 0
        self.flagged = 0
        self.verified = 0
        self.thresholds: dict[tuple[int, int], float] = {}

    def decide(self, current: IntArray, value: float | None = None) -> tuple[float, float, bool]:
        """``(value, threshold, is_drift)``; pass ``value`` to reuse one computed already."""
        stat = self.rule.statistic
        n_current = int(current.sum())
        dof = max(int(np.count_nonzero(occupied(self.reference, current))) - 1, 1)
        threshold = self.thresholds.get((n_current, dof))
        if threshold is None:
            threshold = stat.threshold_for(max(self.n_reference, 1), max(n_current, 1), dof)
            self.thresholds[(n_current, dof)] = threshold
        if value is None:
            value = stat.value(self.reference, current) if n_current and self.n_reference else 0.0
        judged = self.n_reference >= stat.min_samples and n_current >= stat.min_samples
        drift = judged and value >= threshold
        if not judged:
            raise AssertionError(f"window of {n_current} not judged by {self.rule.label}")
        self.calls += 1
        self.flagged += drift
        if self.calls <= self.verify_first or (drift and self.flagged <= self.verify_flagged):
            self._verify(current, value, threshold, drift)
        return value, threshold, drift

    def _verify(self, current: IntArray, value: float, threshold: float, drift: bool) -> None:
        real = self.rule.statistic.evaluate(self.reference, current)
        if (
            real.is_drift != drift
            or not math.isclose(real.value, value, rel_tol=1e-9, abs_tol=1e-12)
            or not math.isclose(real.threshold, threshold, rel_tol=1e-9, abs_tol=1e-12)
        ):
            raise AssertionError(
                f"{self.rule.label}: cached decision ({value}, {threshold}, {drift}) differs "
                f"from Statistic.evaluate ({real.value}, {real.threshold}, {real.is_drift}); "
                "the benchmark's fast path is out of date with stream_drift.stats"
            )
        self.verified += 1


def judges(feature: Feature, cfg: Settings) -> list[Judge]:
    """One judge per rule that applies to the feature's kind, on the rule's grid."""
    return [
        Judge(r, feature.reference_counts(r.statistic), cfg.verify_first, cfg.verify_flagged)
        for r in feature.rules
    ]


def judge_window(
    panel: Sequence[Judge], fine: IntArray, coarse: IntArray
) -> list[tuple[float, float, bool]]:
    """Every judge's verdict on one window; PSI's value is computed once for both PSI rules."""
    values: dict[type, float] = {}
    out = []
    for judge in panel:
        stat = judge.rule.statistic
        current = fine if stat.grid == "fine" else coarse
        decision = judge.decide(current, values.get(type(stat)))
        values[type(stat)] = decision[0]
        out.append(decision)
    return out


def build_features(seed: int) -> dict[str, Feature]:
    """The numeric and categorical references, seeded."""
    rng = np.random.default_rng([seed, 0])
    numeric_ref = rng.standard_normal(N_REFERENCE)
    numeric = NumericBinning.fit(numeric_ref)
    cat_null = _categorical(CATEGORY_PROBS)
    cat_ref = cat_null(rng, N_REFERENCE)
    categorical = CategoricalBinning.fit(cat_ref)
    return {
        "numeric": Feature(
            "numeric", numeric, Histogram(numeric).add(numeric_ref), _normal(0.0, 1.0)
        ),
        "categorical": Feature(
            "categorical", categorical, Histogram(categorical).add(cat_ref), cat_null
        ),
    }


# ------------------------------------------------------------------------- false alarms


@dataclass
class FalseAlarmCell:
    """Alarms of every applicable rule over the no-drift windows of one (feature, n)."""

    kind: str
    n: int
    windows: int
    alarms: dict[str, int]
    psi_values: npt.NDArray[np.float64]
    psi_threshold: float
    dof: int
    verified: int


def false_alarm_cell(feature: Feature, n: int, cfg: Settings, seed: int) -> FalseAlarmCell:
    rng = np.random.default_rng([seed, 1, 0 if feature.kind == "numeric" else 1, n])
    panel = judges(feature, cfg)
    alarms = {j.rule.key: 0 for j in panel}
    windows = cfg.fa_windows_target if n == TARGET_N else cfg.fa_windows
    psi_values = np.empty(windows)
    thresholds: list[float] = []
    per_chunk = max(1, CHUNK_VALUES // n)
    done = 0
    while done < windows:
        count = min(per_chunk, windows - done)
        values = feature.null(rng, count * n)
        fine, coarse = feature.windows(values, n)
        if done == 0:
            feature.check_windows(values, n, fine, coarse)
        for w in range(count):
            for judge, (value, threshold, drift) in zip(
                panel, judge_window(panel, fine[w], coarse[w]), strict=True
            ):
                alarms[judge.rule.key] += drift
                if judge.rule is DEFAULT:
                    psi_values[done + w] = value
                    thresholds.append(threshold)
        done += count
    dof = int(np.count_nonzero(feature.reference.coarse_counts())) - 1
    return FalseAlarmCell(
        feature.kind,
        n,
        windows,
        alarms,
        psi_values,
        float(np.median(thresholds)),
        dof,
        sum(j.verified for j in panel),
    )


def _rate_cell(alarms: int, windows: int) -> tuple[float, float, float, str]:
    lo, hi = clopper_pearson(alarms, windows)
    rate = 1000.0 * alarms / windows
    return rate, 1000.0 * lo, 1000.0 * hi, f"{rate:.2f} [{1000 * lo:.2f}, {1000 * hi:.2f}]"


def false_alarm_tables(
    cells: Sequence[FalseAlarmCell],
) -> tuple[Table, Table, list[Record], list[Record]]:
    columns = [DEFAULT, KS_DEFAULT, CHI2_DEFAULT, NAIVE]
    fa = Table(
        "False alarms per 1,000 window evaluations per feature, no drift (95% Clopper–Pearson)",
        ["feature", "window n", "windows", *(r.label for r in columns), "PSI default threshold"],
        ["l", "r", "r", "r", "r", "r", "r", "r"],
        notes=[
            "Reference m = 100,000: N(0,1), 100 fine / 10 coarse quantile bins; categorical "
            "6 categories p = [0.30, 0.25, 0.20, 0.10, 0.10, 0.05].",
            "Rules as built: " + "; ".join(f"{r.label} = `{r.statistic!r}`" for r in columns) + ".",
            "Target: at most 1 per 1,000 (default nominal false_alarm_rate = 0.0005). "
            "— = not applicable to the kind.",
        ],
    )
    cal = Table(
        "PSI with no drift against its χ² approximation (default rule)",
        [
            "feature",
            "window n",
            "dof",
            "mean PSI",
            "χ² mean (B−1)(1/n+1/m)",
            "PSI q99.9",
            "χ² threshold",
            "threshold used",
            "nominal rate giving q99.9",
        ],
        ["l", "r", "r", "r", "r", "r", "r", "r", "r"],
        notes=[
            "A well-calibrated χ² approximation has mean PSI ≈ χ² mean; `χ² threshold` is the "
            "default rule's (1 − 0.0005 quantile), `threshold used` adds the min_effect floor.",
            "Last column: the false_alarm_rate whose χ² threshold would equal the empirical "
            "99.9% quantile (0.001 = exact calibration; smaller = the approximation is "
            "anti-conservative).",
        ],
    )
    fa_records: list[Record] = []
    cal_records: list[Record] = []
    for cell in cells:
        cells_text: list[str] = []
        for rule in columns:
            if rule.key not in cell.alarms:
                cells_text.append("—")
                continue
            rate, lo, hi, text = _rate_cell(cell.alarms[rule.key], cell.windows)
            cells_text.append(text)
            fa_records.append(
                {
                    "kind": cell.kind,
                    "n": cell.n,
                    "rule": rule.key,
                    "windows": cell.windows,
                    "alarms": cell.alarms[rule.key],
                    "rate_per_1000": rate,
                    "ci_low_per_1000": lo,
                    "ci_high_per_1000": hi,
                }
            )
        fa.add(
            cell.kind, f"{cell.n:,}", f"{cell.windows:,}", *cells_text, f"{cell.psi_threshold:.4f}"
        )
        unit = 1.0 / cell.n + 1.0 / N_REFERENCE
        mean = float(cell.psi_values.mean())
        q999 = float(np.quantile(cell.psi_values, 0.999))
        nominal = float(sps.chi2.sf(q999 / unit, cell.dof))
        nominal_rate = DEFAULT.statistic.false_alarm_rate
        chi2_threshold = DEFAULT.statistic.null_quantile(
            0.001 if nominal_rate is None else nominal_rate, N_REFERENCE, cell.n, cell.dof
        )
        cal.add(
            cell.kind,
            f"{cell.n:,}",
            str(cell.dof),
            f"{mean:.4f}",
            f"{cell.dof * unit:.4f}",
            f"{q999:.4f}",
            f"{chi2_threshold:.4f}",
            f"{cell.psi_threshold:.4f}",
            f"{nominal:.2g}",
        )
        cal_records.append(
            {
                "kind": cell.kind,
                "n": cell.n,
                "dof": cell.dof,
                "psi_mean": mean,
                "psi_mean_chi2_approx": cell.dof * unit,
                "psi_q999": q999,
                "psi_chi2_threshold": chi2_threshold,
                "psi_threshold": cell.psi_threshold,
                "nominal_rate_for_q999": nominal,
            }
        )
    return fa, cal, fa_records, cal_records


# ---------------------------------------------------------------------- detection delay


@dataclass(frozen=True)
class Scenario:
    """A change: which feature it hits and the raw stream after it."""

    key: str
    label: str
    kind: str
    drifted: Draw


SCENARIOS = (
    Scenario("mean_shift", "mean +0.5σ", "numeric", _normal(0.5, 1.0)),
    Scenario("variance_x2", "variance ×2", "numeric", _normal(0.0, math.sqrt(2.0))),
    Scenario("category_shift", "category 10 pt A→F", "categorical", _categorical(SHIFTED_PROBS)),
)


@dataclass
class DelayCell:
    scenario: Scenario
    n: int
    delays: dict[str, npt.NDArray[np.int64]]
    verified: int


def delay_cell(
    feature: Feature, scenario: Scenario, n: int, cfg: Settings, seed: int, index: int
) -> DelayCell:
    panel = judges(feature, cfg)
    delays = {j.rule.key: np.full(cfg.runs, cfg.horizon + 1, dtype=np.int64) for j in panel}
    for run in range(cfg.runs):
        rng = np.random.default_rng([seed, 2, index, n, run])
        fine_blocks: list[IntArray] = []
        coarse_blocks: list[IntArray] = []
        have = 0
        for judge in panel:
            for w in range(cfg.horizon):
                while w >= have:
                    count = min(DELAY_BLOCK, cfg.horizon - have)
                    values = scenario.drifted(rng, count * n)
                    fine, coarse = feature.windows(values, n)
                    if run == 0 and have == 0:
                        feature.check_windows(values, n, fine, coarse)
                    fine_blocks.append(fine)
                    coarse_blocks.append(coarse)
                    have += count
                block, offset = divmod(w, DELAY_BLOCK)
                grid = fine_blocks if judge.rule.statistic.grid == "fine" else coarse_blocks
                if judge.decide(grid[block][offset])[2]:
                    delays[judge.rule.key][run] = w + 1
                    break
    return DelayCell(scenario, n, delays, sum(j.verified for j in panel))


def _quantile(delays: npt.NDArray[np.int64], q: float) -> int:
    return int(np.quantile(delays, q, method="inverted_cdf"))


def _fmt_delay(value: int, horizon: int) -> str:
    return f">{horizon}" if value > horizon else str(value)


def delay_table(cells: Sequence[DelayCell], cfg: Settings) -> tuple[Table, list[Record]]:
    table = Table(
        "Detection delay after a change, tumbling windows (windows until the first flag)",
        ["change", "window n", "rule", "median", "p90", "flagged 1st window", "within 10", "ever"],
        ["l", "r", "l", "r", "r", "r", "r", "r"],
        notes=[
            f"{cfg.runs} seeded runs per row, horizon {cfg.horizon} windows; delay 1 = the first "
            "window after the change (change point on a window boundary).",
            "`ever` = flagged within the horizon. KS for numeric changes, chi2 for categorical.",
        ],
    )
    records: list[Record] = []
    for cell in cells:
        for rule in RULES:
            if rule.key not in cell.delays:
                continue
            d = cell.delays[rule.key]
            med, p90 = _quantile(d, 0.5), _quantile(d, 0.9)
            first = float(np.mean(d == 1))
            within = float(np.mean(d <= 10))
            ever = float(np.mean(d <= cfg.horizon))
            table.add(
                cell.scenario.label,
                f"{cell.n:,}",
                rule.label,
                _fmt_delay(med, cfg.horizon),
                _fmt_delay(p90, cfg.horizon),
                f"{first:.1%}",
                f"{within:.1%}",
                f"{ever:.1%}",
            )
            records.append(
                {
                    "scenario": cell.scenario.key,
                    "kind": cell.scenario.kind,
                    "n": cell.n,
                    "rule": rule.key,
                    "runs": cfg.runs,
                    "horizon": cfg.horizon,
                    "median_windows": med,
                    "p90_windows": p90,
                    "share_first_window": first,
                    "share_within_10": within,
                    "share_detected": ever,
                    "undetected_runs": int(np.sum(d > cfg.horizon)),
                }
            )
    return table, records


# ------------------------------------------------------------------------------ targets


def target_table(
    fa_cells: Sequence[FalseAlarmCell], delay_cells: Sequence[DelayCell], cfg: Settings
) -> tuple[Table, list[Record]]:
    table = Table(
        "Targets (default rule = PSI())",
        ["target", "limit", "measured", "95% CI", "CI vs limit", "verdict"],
        ["l", "r", "r", "r", "l", "l"],
        notes=[
            "Verdicts compare the point estimate with the limit. `CI vs limit` says whether the "
            "95% interval lies wholly below or above the limit or covers it (then the verdict "
            "is within sampling noise).",
        ],
    )
    records: list[Record] = []

    def add(
        name: str,
        key: str,
        limit: float,
        measured: float,
        ok: bool,
        ci: tuple[float, float] | None = None,
    ) -> None:
        if ci is None:
            ci_text, versus = "", ""
        else:
            ci_text = f"[{ci[0]:.2f}, {ci[1]:.2f}]"
            versus = "below" if ci[1] <= limit else "above" if ci[0] > limit else "covers"
        table.add(name, f"{limit:g}", f"{measured:g}", ci_text, versus, "PASS" if ok else "FAIL")
        record: Record = {"target": key, "limit": limit, "measured": measured, "passed": ok}
        if ci is not None:
            record |= {"ci_low": ci[0], "ci_high": ci[1], "ci_covers_limit": versus == "covers"}
        records.append(record)

    for cell in fa_cells:
        if cell.n != TARGET_N:
            continue
        rate, lo, hi, _ = _rate_cell(cell.alarms[DEFAULT.key], cell.windows)
        add(
            f"false alarms /1,000 evaluations, {cell.kind}, n={TARGET_N}",
            f"false_alarms_{cell.kind}_n{TARGET_N}",
            TARGET_FA_PER_1000,
            round(rate, 3),
            rate <= TARGET_FA_PER_1000,
            (lo, hi),
        )
    for dc in delay_cells:
        if dc.scenario.key != "mean_shift":
            continue
        d = dc.delays[DEFAULT.key]
        limit = 1 if dc.n == 1_000 else 3
        med, p90 = _quantile(d, 0.5), _quantile(d, 0.9)
        add(
            f"0.5σ shift delay, n={dc.n:,}, median (windows)",
            f"mean_shift_n{dc.n}_median",
            limit,
            med,
            med <= limit,
        )
        if dc.n == 1_000:
            add(
                f"0.5σ shift delay, n={dc.n:,}, p90 (stretch)",
                f"mean_shift_n{dc.n}_p90",
                limit,
                p90,
                p90 <= limit,
            )
    return table, records


def main(argv: Sequence[str] | None = None) -> int:
    """Run the detection-quality benchmark and print the tables (or JSON with ``--json``)."""
    parser = base_parser("python -m bench.detection", "Detection quality of stream_drift.stats.")
    args = parser.parse_args(argv)
    cfg = Settings(args.quick)
    start = time.perf_counter()
    features = build_features(args.seed)
    fa_cells = [
        false_alarm_cell(feature, n, cfg, args.seed)
        for feature in features.values()
        for n in FA_WINDOW_SIZES
    ]
    fa_time = elapsed_since(start)
    delay_cells = [
        delay_cell(features[s.kind], s, n, cfg, args.seed, i)
        for i, s in enumerate(SCENARIOS)
        for n in DELAY_WINDOW_SIZES
    ]
    fa, cal, fa_records, cal_records = false_alarm_tables(fa_cells)
    delays, delay_records = delay_table(delay_cells, cfg)
    targets, target_records = target_table(fa_cells, delay_cells, cfg)
    elapsed = elapsed_since(start)
    failed = [
        str(r["target"]) + (" (CI covers limit)" if r.get("ci_covers_limit") else "")
        for r in target_records
        if not r["passed"]
    ]
    summary = (
        f"SUMMARY: {len(target_records) - len(failed)}/{len(target_records)} targets PASS"
        + (f"; FAIL: {', '.join(failed)}" if failed else "")
        + f" ({cfg.fa_windows_target:,} windows per n=200 false-alarm cell, {cfg.fa_windows:,} "
        f"per other cell, {cfg.runs} runs per delay row; "
        f"{elapsed} s)."
    )
    emit(
        benchmark="bench.detection",
        tables=[fa, cal, delays, targets],
        records={
            "false_alarms": fa_records,
            "psi_null_calibration": cal_records,
            "detection_delay": delay_records,
            "targets": target_records,
        },
        meta={
            "quick": cfg.quick,
            "seed": args.seed,
            "fa_windows_per_cell": cfg.fa_windows,
            "fa_windows_n200": cfg.fa_windows_target,
            "checked_against_evaluate": sum(c.verified for c in fa_cells)
            + sum(c.verified for c in delay_cells),
            "delay_runs": cfg.runs,
            "horizon": cfg.horizon,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "false_alarm_s": fa_time,
            "elapsed_s": elapsed,
        },
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
