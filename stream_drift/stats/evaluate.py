"""Evaluate a window of one model against its reference: every feature, every statistic."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_drift.stats.base import Statistic
from stream_drift.stats.binning import IntArray
from stream_drift.stats.chi2 import ChiSquare
from stream_drift.stats.decision import correct_across_features
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.js import JSDistance
from stream_drift.stats.kl import KL
from stream_drift.stats.ks import KS
from stream_drift.stats.psi import PSI
from stream_drift.stats.quality import QUALITY_STATISTICS, MismatchRate, MissingRate, RateResult
from stream_drift.stats.result import DriftResult, Severity

STATISTICS: dict[str, type[Statistic]] = {
    cls.name: cls for cls in (PSI, KL, JSDistance, KS, ChiSquare, MissingRate, MismatchRate)
}
"""Every statistic, by its short name: the drift statistics, then the data-quality ones
(:data:`~stream_drift.stats.quality.QUALITY_STATISTICS`)."""


def default_statistics(**params: Any) -> list[Statistic]:
    """One instance of every statistic, built with the same keyword arguments."""
    return [cls(**params) for cls in STATISTICS.values()]


@dataclass(frozen=True)
class FeatureEvaluation:
    """Every applicable statistic's verdict on one feature, plus what explains it.

    ``drift`` and ``severity`` follow the *decisive* drift statistics only (PSI by default),
    ``data_quality`` the decisive data-quality ones (``missing_rate``, ``mismatch_rate``);
    the others are reported for context. ``judged`` says whether a drift statistic had
    enough binned values to judge the window (the data-quality ones count every event).
    """

    feature: str
    kind: str
    results: dict[str, DriftResult]
    n_reference: int
    n_current: int
    missing_ratio: float
    top_bins: list[dict[str, Any]] = field(default_factory=list)
    decisive: tuple[str, ...] = ("psi",)
    mismatch_ratio: float = 0.0

    def _decisive(self, quality: bool) -> list[DriftResult]:
        return [
            r
            for s, r in self.results.items()
            if s in self.decisive and (s in QUALITY_STATISTICS) == quality
        ]

    @property
    def drift(self) -> bool:
        return any(r.is_drift for r in self._decisive(quality=False))

    @property
    def severity(self) -> Severity:
        return max((r.severity for r in self._decisive(quality=False)), default=Severity.OK)

    @property
    def data_quality(self) -> bool:
        """``True`` when a decisive data-quality statistic flagged the window."""
        return any(r.is_drift for r in self._decisive(quality=True))

    @property
    def judged(self) -> bool:
        return any(r.judged for s, r in self.results.items() if s not in QUALITY_STATISTICS)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready summary: each statistic's value, p-value where it has one.

        Statistics that do not apply to the kind are ``None``.
        """

        def get(stat: str, attr: str) -> Any:
            r = self.results.get(stat)
            return None if r is None else getattr(r, attr)

        return {
            "kind": self.kind,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            **{stat: get(stat, "value") for stat in STATISTICS},
            "ks_p_value": get("ks", "p_value"),
            "chi2_p_value": get("chi2", "p_value"),
            "psi_p_value": get("psi", "p_value"),
            "psi_threshold": get("psi", "threshold"),
            "missing_ratio": self.missing_ratio,
            "mismatch_ratio": self.mismatch_ratio,
            "judged": self.judged,
            "severity": self.severity.label,
            "drift": self.drift,
            "data_quality": self.data_quality,
            "top_bins": self.top_bins,
            "results": {stat: r.to_dict() for stat, r in self.results.items()},
        }


def top_bins(reference: Histogram, current: Histogram, k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` coarse bins whose share changed most, largest change first.

    Examples
    --------
    >>> from stream_drift.stats.binning import CategoricalBinning
    >>> b = CategoricalBinning(["a", "b"])
    >>> top_bins(Histogram(b, [50, 50, 0]), Histogram(b, [20, 70, 10]), k=1)
    [{'bin': 'a', 'reference': 0.5, 'current': 0.2}]
    """
    ref = reference.coarse_counts().astype(np.float64)
    cur = current.coarse_counts().astype(np.float64)
    if ref.sum() == 0 or cur.sum() == 0:
        return []
    r, c = ref / ref.sum(), cur / cur.sum()
    labels = reference.binning.coarse_labels()
    order = np.argsort(-np.abs(c - r), kind="stable")[:k]
    return [
        {"bin": labels[i], "reference": round(float(r[i]), 4), "current": round(float(c[i]), 4)}
        for i in order
    ]


def evaluate_feature(
    feature: str,
    reference: Histogram,
    current: Histogram,
    statistics: Sequence[Statistic],
    decisive: Collection[str] = ("psi",),
) -> FeatureEvaluation:
    """Run every statistic that applies to the feature's kind on its grid
    (:meth:`~stream_drift.stats.histogram.Histogram.grid_counts`)."""
    binning = reference.binning
    grids: dict[str, tuple[IntArray, IntArray]] = {}

    def counts(grid: str) -> tuple[IntArray, IntArray]:
        if grid not in grids:
            grids[grid] = (reference.grid_counts(grid), current.grid_counts(grid))
        return grids[grid]

    results = {s.name: s.evaluate(*counts(s.grid)) for s in statistics if binning.kind in s.kinds}
    for name, r in results.items():
        if isinstance(r, RateResult):  # what "of the wrong type" means depends on the kind
            results[name] = dataclasses.replace(r, kind=binning.kind)
    return FeatureEvaluation(
        feature=feature,
        kind=binning.kind,
        results=results,
        n_reference=reference.n,
        n_current=current.n,
        missing_ratio=current.missing_ratio,
        top_bins=top_bins(reference, current),
        decisive=tuple(decisive),
        mismatch_ratio=current.mismatch_ratio,
    )


def evaluate_window(
    references: Mapping[str, Histogram],
    currents: Mapping[str, Histogram],
    statistics: Sequence[Statistic],
    *,
    decisive: Collection[str] = ("psi",),
    correction: str = "bh",
) -> dict[str, FeatureEvaluation]:
    """Evaluate every feature present in both mappings; correct p-values across features.

    Parameters
    ----------
    references, currents
        Histograms by feature name; features missing from ``currents`` are skipped.
    statistics
        Statistic instances to run.
    decisive
        Names of the statistics whose verdict makes a feature "drifted" (the drift statistics
        among them) or gives it a data-quality problem (``missing_rate``, ``mismatch_rate``).
    correction
        ``"bh"`` (Benjamini–Hochberg across the model's features, per statistic) or ``"none"``.
    """
    if correction not in ("bh", "none"):
        raise ValueError(f"correction must be 'bh' or 'none', got {correction!r}")
    evaluations = {
        name: evaluate_feature(name, ref, currents[name], statistics, decisive)
        for name, ref in references.items()
        if name in currents
    }
    if correction == "bh":
        for stat in statistics:
            per_feature = {
                f: e.results[stat.name] for f, e in evaluations.items() if stat.name in e.results
            }
            corrected = correct_across_features(per_feature, stat)
            for f, r in corrected.items():
                evaluations[f].results[stat.name] = r
    return evaluations
