"""What every drift statistic shares: thresholds, the sample-size gate, severity, smoothing."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from stream_drift.stats.binning import FloatArray, IntArray, Kind
from stream_drift.stats.result import DriftResult, Severity

PSEUDO_COUNT = 0.5
"""Pseudo-count added to every bin before proportions are taken (Jeffreys prior).

Only bins that hold at least one observation on either side take part; a bin empty on both
sides carries no information and would otherwise add a bias that depends on the two sample
sizes. A bin empty on one side only gets ``0.5 / (n + 0.5 B)``, so PSI and KL stay finite
(never a silent 0 or ∞) yet grow large when a new category or range appears.
"""


def occupied(reference: IntArray, current: IntArray) -> npt.NDArray[np.bool_]:
    """Bins with at least one observation on either side."""
    return (reference > 0) | (current > 0)


def smoothed_proportions(
    reference: npt.ArrayLike, current: npt.ArrayLike, pseudo_count: float = PSEUDO_COUNT
) -> tuple[FloatArray, FloatArray]:
    """Smoothed proportions of both sides over their occupied bins.

    Examples
    --------
    >>> r, c = smoothed_proportions([10, 0, 0], [5, 5, 0])
    >>> r.round(4).tolist(), c.round(4).tolist()
    ([0.9545, 0.0455], [0.5, 0.5])
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep] + pseudo_count, cur[keep] + pseudo_count
    return ref / ref.sum(), cur / cur.sum()


class Statistic(abc.ABC):
    """A two-sample drift statistic computed from two histograms of counts.

    Subclasses define :meth:`value` and the statistic's null distribution (the distribution of
    its value when nothing drifted), which gives both the p-value and the threshold for a target
    false-alarm rate. Constructor arguments are stored as given.

    Parameters
    ----------
    threshold
        Fixed threshold in the statistic's units; when set, it replaces the false-alarm-rate
        threshold.
    false_alarm_rate
        Target probability of flagging a window that did not drift. The threshold is the
        ``1 - false_alarm_rate`` quantile of the null distribution for the window's sample sizes,
        so it shrinks as windows grow. The default, 0.0005, is half the usual 1/1000 target:
        on windows of 100–200 values the chi-square approximation's tail is slightly heavier
        than χ² (``python -m bench.detection`` measures it), and the margin keeps the real
        rate under 1/1000. Once the ``min_effect`` floor sets the threshold (large windows),
        the real rate is lower still.
    min_effect
        Floor under the threshold, so a huge window does not flag a negligible change;
        ``None`` uses the class's ``default_min_effect`` (PSI 0.05, KL 0.025, JS 0.09, KS 0.05,
        chi-square 0).
    min_samples
        Windows (or references) with fewer non-missing values are not judged.
    critical
        Value from which a drift is critical rather than a warning; ``None`` makes every drift
        critical. Defaults to the class's ``critical_value``.
    """

    name: ClassVar[str]
    grid: ClassVar[str] = "coarse"
    """Which grid of the binning the statistic is computed on: ``"coarse"`` or ``"fine"``."""
    kinds: ClassVar[frozenset[Kind]] = frozenset({"numeric", "categorical"})
    critical_value: ClassVar[float | None] = None
    default_min_effect: ClassVar[float] = 0.0

    def __init__(
        self,
        *,
        threshold: float | None = None,
        false_alarm_rate: float | None = 0.0005,
        min_effect: float | None = None,
        min_samples: int = 100,
        critical: float | None = None,
    ) -> None:
        if threshold is None and false_alarm_rate is None:
            raise ValueError(f"{self.name}: set threshold or false_alarm_rate")
        if false_alarm_rate is not None and not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"{self.name}: false_alarm_rate must be in (0, 1)")
        if threshold is not None and threshold < 0:
            raise ValueError(f"{self.name}: threshold must be >= 0")
        if min_samples < 1:
            raise ValueError(f"{self.name}: min_samples must be >= 1")
        self.threshold = threshold
        self.false_alarm_rate = false_alarm_rate
        self.min_effect = min_effect
        self.min_samples = min_samples
        self.critical = critical

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, so ``type(s)(**s.get_params())`` rebuilds ``s``."""
        return {
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "min_effect": self.min_effect,
            "min_samples": self.min_samples,
            "critical": self.critical,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @abc.abstractmethod
    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The statistic for two count vectors over the same bins."""

    def baseline(self, reference: npt.ArrayLike) -> float:
        """The value of a window identical to ``reference``: 0 for a divergence.

        ``min_effect`` is measured from it: a rate statistic
        (:class:`~stream_drift.stats.quality.RateStatistic`) returns the reference's own rate,
        and its threshold is never below that rate plus ``min_effect``.
        """
        return 0.0

    @abc.abstractmethod
    def p_value(self, value: float, n_reference: int, n_current: int, dof: int) -> float | None:
        """Probability under no drift of a value at least as large."""

    @abc.abstractmethod
    def null_quantile(self, rate: float, n_reference: int, n_current: int, dof: int) -> float:
        """The value exceeded with probability ``rate`` under no drift."""

    def threshold_for(self, n_reference: int, n_current: int, dof: int) -> float:
        """Threshold in the statistic's units for these sample sizes."""
        if self.threshold is not None:
            limit = self.threshold
        else:
            assert self.false_alarm_rate is not None
            limit = self.null_quantile(self.false_alarm_rate, n_reference, n_current, dof)
        floor = self.default_min_effect if self.min_effect is None else self.min_effect
        return max(float(limit), floor)

    def severity_of(self, value: float, is_drift: bool) -> Severity:
        if not is_drift:
            return Severity.OK
        critical = self.critical if self.critical is not None else self.critical_value
        return Severity.CRITICAL if critical is None or value >= critical else Severity.WARNING

    def evaluate(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
        """Judge ``current`` counts against ``reference`` counts over the same bins.

        Examples
        --------
        >>> from stream_drift.stats.psi import PSI
        >>> r = PSI(min_samples=10).evaluate([50, 50], [90, 10])
        >>> r.statistic, round(r.value, 3), r.is_drift, r.severity.label
        ('psi', 0.853, True, 'critical')
        """
        ref = np.asarray(reference, dtype=np.int64)
        cur = np.asarray(current, dtype=np.int64)
        if ref.shape != cur.shape:
            raise ValueError(f"{self.name}: reference has {ref.size} bins, current {cur.size}")
        n_ref, n_cur = int(ref.sum()), int(cur.sum())
        dof = max(int(np.count_nonzero(occupied(ref, cur))) - 1, 1)
        value = self.value(ref, cur) if n_ref and n_cur else 0.0
        p_value = self.p_value(value, n_ref, n_cur, dof) if n_ref and n_cur else None
        threshold = self.threshold_for(max(n_ref, 1), max(n_cur, 1), dof)
        judged = n_ref >= self.min_samples and n_cur >= self.min_samples
        is_drift = judged and value >= threshold
        return DriftResult(
            statistic=self.name,
            value=float(value),
            threshold=threshold,
            p_value=None if p_value is None else float(p_value),
            is_drift=bool(is_drift),
            severity=self.severity_of(value, is_drift),
            n_reference=n_ref,
            n_current=n_cur,
            judged=judged,
        )
