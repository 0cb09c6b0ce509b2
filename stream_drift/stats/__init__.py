"""Pure numpy/scipy drift statistics: binning, histograms, windows, statistics, decisions,
and realised model performance.

Nothing here does I/O or imports Faust, Kafka or Prometheus; a test enforces it.
"""

from stream_drift.stats.base import PSEUDO_COUNT, Statistic, smoothed_proportions
from stream_drift.stats.binning import (
    MISMATCH,
    MISSING,
    UNSEEN,
    Binning,
    CategoricalBinning,
    NumericBinning,
    binning_from_dict,
)
from stream_drift.stats.chi2 import ChiSquare
from stream_drift.stats.decision import benjamini_hochberg, correct_across_features
from stream_drift.stats.evaluate import (
    STATISTICS,
    FeatureEvaluation,
    default_statistics,
    evaluate_feature,
    evaluate_window,
    top_bins,
)
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.js import JSDistance
from stream_drift.stats.kl import KL
from stream_drift.stats.ks import KS
from stream_drift.stats.performance import (
    BinaryPerformance,
    MulticlassPerformance,
    PerformanceAccumulator,
    RegressionPerformance,
    Task,
    accumulator_from_dict,
    infer_task,
    new_accumulator,
)
from stream_drift.stats.psi import PSI
from stream_drift.stats.quality import (
    QUALITY_STATISTICS,
    RATE_PSEUDO_COUNT,
    MismatchRate,
    MissingRate,
    RateResult,
    RateStatistic,
)
from stream_drift.stats.result import DriftResult, Severity
from stream_drift.stats.window import SlidingWindow

__all__ = [
    "KL",
    "KS",
    "MISMATCH",
    "MISSING",
    "PSEUDO_COUNT",
    "PSI",
    "QUALITY_STATISTICS",
    "RATE_PSEUDO_COUNT",
    "STATISTICS",
    "UNSEEN",
    "BinaryPerformance",
    "Binning",
    "CategoricalBinning",
    "ChiSquare",
    "DriftResult",
    "FeatureEvaluation",
    "Histogram",
    "JSDistance",
    "MismatchRate",
    "MissingRate",
    "MulticlassPerformance",
    "NumericBinning",
    "PerformanceAccumulator",
    "RateResult",
    "RateStatistic",
    "RegressionPerformance",
    "Severity",
    "SlidingWindow",
    "Statistic",
    "Task",
    "accumulator_from_dict",
    "benjamini_hochberg",
    "binning_from_dict",
    "correct_across_features",
    "default_statistics",
    "evaluate_feature",
    "evaluate_window",
    "infer_task",
    "new_accumulator",
    "smoothed_proportions",
    "top_bins",
]
