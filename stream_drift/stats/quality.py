"""Data-quality statistics: is a feature missing, or of the wrong type, more often than usual?

A feature that stops arriving (absent or null) or arrives as the wrong kind of value (a string
where the reference holds numbers: an upstream schema change) leaves no trace in PSI or KS,
which only see the values that could be binned. :class:`MissingRate` and
:class:`MismatchRate` watch those two shares instead, per feature and window, against the
reference's own shares, and are calibrated like the drift statistics: a threshold set as a
target false-alarm rate, a minimum effect, a sample-size gate.

Both read a two-bin count vector ``[others, flagged]`` over every observation of the series
(:meth:`~stream_drift.stats.histogram.Histogram.grid_counts` with the statistic's ``grid``);
any count vector works, the last bin being the flagged one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, gammaln

from stream_drift.stats.base import Statistic
from stream_drift.stats.result import DriftResult

RATE_PSEUDO_COUNT = 0.5
"""Half an observation added to each side of the reference's count (Jeffreys prior).

With ``k`` flagged values out of ``m`` in the reference, its rate is taken as uncertain,
distributed ``Beta(k + 0.5, m − k + 0.5)`` (mean ``(k + 0.5) / (m + 1)``): the same half
observation as :data:`~stream_drift.stats.base.PSEUDO_COUNT`. A clean reference (``k = 0``) of
100,000 values so has a rate of about 5e-6, not 0: one flagged value in a window is improbable
rather than impossible (no division by zero, no p-value of exactly 0).
"""


@dataclass(frozen=True, slots=True)
class RateResult(DriftResult):
    """A :class:`~stream_drift.stats.result.DriftResult` that also carries the reference rate.

    ``value`` is the window's rate, ``n_reference`` and ``n_current`` count every
    observation (flagged or not), ``reference_rate`` is the reference's observed rate
    (unsmoothed) and ``kind`` the series' kind (``"numeric"``, ``"categorical"``; ``""`` when
    unknown, set by :func:`~stream_drift.stats.evaluate.evaluate_feature`): the alert text
    quotes both.

    Examples
    --------
    >>> r = MismatchRate(min_samples=10).evaluate([100, 0], [58, 42])
    >>> r.reference_rate, r.value, r.is_drift, r.severity.label
    (0.0, 0.42, True, 'warning')
    """

    reference_rate: float = 0.0
    kind: str = ""


_CHUNK = 256
"""Terms of a tail sum computed at once (the chunk doubles until the terms are negligible)."""

_NEGLIGIBLE = 1e-20
"""A tail sum stops when its newest term is below this share of the sum so far."""


def _beta_params(n_reference: int, flagged_reference: int) -> tuple[float, float]:
    return (
        flagged_reference + RATE_PSEUDO_COUNT,
        n_reference - flagged_reference + RATE_PSEUDO_COUNT,
    )


def _log_pmf(x: npt.NDArray[np.float64], n: int, a: float, b: float) -> npt.NDArray[np.float64]:
    """Log-probabilities of ``x`` under ``BetaBinomial(n, a, b)``."""
    out: npt.NDArray[np.float64] = (
        gammaln(n + 1.0)
        - gammaln(x + 1.0)
        - gammaln(n - x + 1.0)
        + betaln(x + a, n - x + b)
        - betaln(a, b)
    )
    return out


def _terms(start: int, n: int, a: float, b: float, step: int) -> npt.NDArray[np.float64]:
    """Probabilities of ``start``, ``start + step``, … moving away from the bulk of the mass,
    until the end of ``0 … n`` or until the newest one is negligible (the distribution is
    unimodal, so the ones after it are smaller still)."""
    chunks = []
    total, size, x0 = 0.0, _CHUNK, start
    while True:
        x1 = min(n, x0 + size - 1) if step > 0 else max(0, x0 - size + 1)
        pmf = np.exp(_log_pmf(np.arange(x0, x1 + step, step, dtype=np.float64), n, a, b))
        chunks.append(pmf)
        total += float(pmf.sum())
        if x1 == (n if step > 0 else 0) or pmf[-1] <= _NEGLIGIBLE * total:
            return np.concatenate(chunks)
        x0, size = x1 + step, size * 2


def _tail(k: int, n: int, a: float, b: float) -> float:
    """``P(X >= k)`` for ``X ~ BetaBinomial(n, a, b)``, summed from the far side of the mean
    (small tails keep their relative precision)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if k > n * a / (a + b):
        return min(float(_terms(k, n, a, b, +1)[::-1].sum()), 1.0)
    return min(max(1.0 - float(_terms(k - 1, n, a, b, -1)[::-1].sum()), 0.0), 1.0)


@functools.lru_cache(maxsize=4096)
def _critical_count(rate: float, n: int, a: float, b: float) -> int:
    """The smallest ``k`` in ``1 … n + 1`` with ``P(X >= k) <= rate``, ``X ~ BetaBinomial``.

    ``n + 1`` (unreachable) when even ``k = n`` is not that improbable. Above the mean every
    tail comes from one sweep; otherwise (a rate near 0.5 or above) by bisection.
    """
    start = max(math.floor(n * a / (a + b)) + 1, 1)
    if start <= n:
        pmf = _terms(start, n, a, b, +1)
        tails = np.cumsum(pmf[::-1])[::-1]  # tails[i] = P(start + i <= X < start + len)
        if tails[0] > rate:
            past = np.flatnonzero(tails <= rate)
            if past.size:
                return start + int(past[0])
            return start + pmf.size  # the sum stopped where the rest is negligible, or at n
    lo, hi = 0, min(start, n + 1)  # P(X >= lo) > rate (P(X >= 0) = 1), P(X >= hi) <= rate
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _tail(mid, n, a, b) <= rate:
            hi = mid
        else:
            lo = mid
    return hi


class RateStatistic(Statistic):
    """The share of flagged observations in a window, tested against the reference's share.

    **Test.** With ``k`` of the reference's ``m`` observations flagged, the reference rate is
    ``Beta(k + 0.5, m − k + 0.5)`` (:data:`RATE_PSEUDO_COUNT`) and the number of flagged
    values in a window of ``n`` drawn at that rate is ``X ~ BetaBinomial(n, k + 0.5,
    m − k + 0.5)``. A window with ``x`` flagged values has the one-sided p-value
    ``P(X >= x)``: the chance of at least that many if nothing changed. This is the binomial
    test of ``x`` against the smoothed reference rate ``(k + 0.5) / (m + 1)`` with the
    reference's own sampling error included: its variance is about
    ``p (1 − p) (1/n + 1/m)``, the ``1/n + 1/m`` of the drift statistics' null distributions.
    A plain binomial test treats the reference rate as exact and flags too often when the
    window is not much smaller than the reference (measured: 7 times the nominal rate for a
    window of 5,000 against a reference of 10,000). As ``m`` grows it becomes the binomial
    test. Only a *rise* is tested: fewer missing or mismatched values than usual is no
    data-quality problem.

    **Threshold**, in the value's units (a rate): the smallest window rate ``x / n`` whose
    p-value is at most ``false_alarm_rate`` (exact tails, so the false-alarm rate is at most
    the nominal one; discreteness makes it lower), or the fixed ``threshold``; floored by the
    reference's observed rate plus ``min_effect`` (default 0.05: five percentage points), so a
    huge window does not alert on a negligible rise (and, with ``min_effect=0``, a window is
    never flagged below the reference's own rate, which a tiny reference could otherwise
    allow). A window in which no rate would be significant gets ``(n + 1) / n``, which no rate
    reaches.

    **Gate and severity.** ``min_samples`` counts every observation (flagged ones too). A
    drift is critical from a rate of 0.5 (half the window's values unusable), a warning below.
    """

    grid: ClassVar[str]
    critical_value = 0.5
    default_min_effect = 0.05

    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The window's rate: the last bin's share of ``current``."""
        return self.baseline(current)

    def baseline(self, reference: npt.ArrayLike) -> float:
        """The reference's observed rate: the last bin's share (0 when empty)."""
        counts = np.asarray(reference, dtype=np.int64)
        total = int(counts.sum())
        return int(counts[-1]) / total if total else 0.0

    def p_value(
        self,
        value: float,
        n_reference: int,
        n_current: int,
        dof: int,
        *,
        flagged_reference: int = 0,
    ) -> float:
        """``P(X >= value · n_current)`` for ``X ~ BetaBinomial`` (``dof`` unused)."""
        return _tail(
            round(value * n_current), n_current, *_beta_params(n_reference, flagged_reference)
        )

    def null_quantile(
        self,
        rate: float,
        n_reference: int,
        n_current: int,
        dof: int,
        *,
        flagged_reference: int = 0,
    ) -> float:
        """The smallest window rate whose p-value is at most ``rate`` (``dof`` unused)."""
        a, b = _beta_params(n_reference, flagged_reference)
        return _critical_count(float(rate), int(n_current), a, b) / n_current

    def threshold_for(
        self,
        n_reference: int,
        n_current: int,
        dof: int,
        *,
        flagged_reference: int = 0,
    ) -> float:
        """Threshold rate for these sample sizes and ``flagged_reference`` flagged values.

        Examples
        --------
        A clean reference of 100,000 values and a window of 2,000: two flagged values would
        already be significant at 0.0005, so the 5-point floor decides.

        >>> MismatchRate().threshold_for(100_000, 2000, 1)
        0.05
        >>> MismatchRate(min_effect=0.0).threshold_for(100_000, 2000, 1)
        0.001
        """
        if self.threshold is not None:
            limit = self.threshold
        else:
            assert self.false_alarm_rate is not None
            limit = self.null_quantile(
                self.false_alarm_rate,
                n_reference,
                n_current,
                dof,
                flagged_reference=flagged_reference,
            )
        effect = self.default_min_effect if self.min_effect is None else self.min_effect
        return max(float(limit), flagged_reference / n_reference + effect)

    def evaluate(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> RateResult:
        """Judge the window's rate against the reference's (the last bins are the flagged).

        Examples
        --------
        Hand-worked, the smallest case: none of 1 reference value flagged, both of a window
        of 2. The rate is ``Beta(0.5, 1.5)``, and ``P(X = 2) = E[p²] = B(2.5, 1.5) / B(0.5,
        1.5) = (π/16) / (π/2) = 1/8``:

        >>> r = MissingRate(min_samples=1).evaluate([1, 0], [0, 2])
        >>> r.value, r.p_value, r.reference_rate, r.is_drift
        (1.0, 0.125, 0.0, False)

        3 flagged of 200 in the window vs 0 of 1,000 in the reference: p = 0.0015 (a plain
        binomial test at the rate 0.5/1001 would say 1.5e-4; the reference's 1,000 values leave
        its rate uncertain), not significant at 0.0005, and below the 5-point floor anyway.

        >>> r = MissingRate().evaluate([1000, 0], [197, 3])
        >>> r.value, f"{r.p_value:.2g}", r.threshold, r.is_drift
        (0.015, '0.0015', 0.05, False)
        """
        ref = np.asarray(reference, dtype=np.int64)
        cur = np.asarray(current, dtype=np.int64)
        if ref.shape != cur.shape or ref.ndim != 1 or ref.size < 1:
            raise ValueError(f"{self.name}: reference has {ref.size} bins, current {cur.size}")
        n_ref, n_cur = int(ref.sum()), int(cur.sum())
        k_ref = int(ref[-1])
        both = bool(n_ref and n_cur)
        value = self.value(ref, cur) if both else 0.0
        p_value = self.p_value(value, n_ref, n_cur, 1, flagged_reference=k_ref) if both else None
        threshold = self.threshold_for(max(n_ref, 1), max(n_cur, 1), 1, flagged_reference=k_ref)
        judged = n_ref >= self.min_samples and n_cur >= self.min_samples
        is_drift = judged and value >= threshold
        return RateResult(
            statistic=self.name,
            value=float(value),
            threshold=float(threshold),
            p_value=p_value,
            is_drift=bool(is_drift),
            severity=self.severity_of(value, is_drift),
            n_reference=n_ref,
            n_current=n_cur,
            judged=judged,
            reference_rate=self.baseline(ref),
        )


class MissingRate(RateStatistic):
    """Share of a window's observations that are missing (absent, null, NaN or ±inf).

    Examples
    --------
    A feature null in 2 % of the reference and 30 % of a window of 1,000 events:

    >>> r = MissingRate().evaluate([9800, 200], [700, 300])
    >>> r.statistic, r.value, r.reference_rate, r.threshold, r.is_drift, r.severity.label
    ('missing_rate', 0.3, 0.02, 0.07, True, 'warning')
    """

    name = "missing_rate"
    grid = "missing"


class MismatchRate(RateStatistic):
    """Share of a window's observations of the wrong kind for the series (type mismatch).

    For a numeric series anything that is not a number (a string, even ``"12.5"``, a bool);
    for a categorical one a container (see
    :class:`~stream_drift.stats.binning.CategoricalBinning`).

    Examples
    --------
    >>> r = MismatchRate().evaluate([5000, 0], [400, 600])
    >>> r.statistic, r.value, r.threshold, r.is_drift, r.severity.label
    ('mismatch_rate', 0.6, 0.05, True, 'critical')
    """

    name = "mismatch_rate"
    grid = "mismatch"


QUALITY_STATISTICS: frozenset[str] = frozenset({MissingRate.name, MismatchRate.name})
"""Names of the data-quality statistics: their alerts have the category ``data_quality``."""
