"""Decisions across the features of one model: multiple-testing correction."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from stream_drift.stats.base import Statistic
from stream_drift.stats.result import DriftResult, Severity


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses the Benjamini–Hochberg step-up procedure rejects at FDR ``alpha``.

    With ``k`` the largest rank such that ``p_(k) <= k · alpha / m``, the ``k`` smallest p-values
    are rejected. Under the global null (no feature drifted) the chance of any rejection is at
    most ``alpha``, so the per-model false-alarm rate stays at the per-feature target.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.03, 0.02, 0.5], alpha=0.05)
    [True, True, True, False]
    >>> benjamini_hochberg([0.02, 0.04], alpha=0.01)
    [False, False]
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha * np.arange(1, m + 1) / m
    rejected = np.zeros(m, dtype=bool)
    if passed.any():
        k = int(np.flatnonzero(passed).max())
        rejected[order[: k + 1]] = True
    return [bool(x) for x in rejected]


def correct_across_features(
    results: Mapping[str, DriftResult], statistic: Statistic
) -> dict[str, DriftResult]:
    """Apply Benjamini–Hochberg to one statistic's results over a model's features.

    Only statistics thresholded by a false-alarm rate are corrected (a fixed threshold is the
    user's explicit choice); a drift survives when its own threshold is crossed *and* BH
    rejects its p-value at that rate. Unjudged windows take no part.

    Examples
    --------
    >>> from stream_drift.stats.psi import PSI
    >>> psi = PSI(min_samples=10)
    >>> out = correct_across_features({
    ...     "a": psi.evaluate([500] * 10, [500] * 9 + [2000]),
    ...     "b": psi.evaluate([500] * 10, [500] * 10)}, psi)
    >>> out["a"].is_drift, out["b"].is_drift
    (True, False)
    """
    if statistic.threshold is not None or statistic.false_alarm_rate is None:
        return dict(results)
    p_values = {
        k: r.p_value
        for k, r in results.items()
        if r.judged and r.p_value is not None and r.statistic == statistic.name
    }
    tested = list(p_values)
    keep = benjamini_hochberg(list(p_values.values()), statistic.false_alarm_rate)
    out = dict(results)
    for name, rejected in zip(tested, keep, strict=True):
        r = results[name]
        if r.is_drift and not rejected:
            out[name] = dataclasses.replace(r, is_drift=False, severity=Severity.OK)
    return out
