"""Pearson chi-square test of homogeneity for categorical series."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc, chdtri

from stream_drift.stats.base import Statistic


class ChiSquare(Statistic):
    """Pearson's chi-square statistic on the 2 × B table (reference, current) × category.

    Bins empty on both sides are dropped; the unseen bucket counts as a category, so a new
    category raises the statistic. The p-value is ``χ²(B−1).sf``; every drift is critical (the
    statistic has no natural effect scale, use PSI's bands for that).

    Examples
    --------
    >>> round(ChiSquare().value([30, 70], [60, 40]), 4)
    18.1818
    """

    name = "chi2"
    kinds = frozenset({"categorical"})
    critical_value = None

    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        table = np.vstack(
            [np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)]
        )
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 0.0
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        return float(np.sum((table - expected) ** 2 / expected))

    def p_value(self, value: float, n_reference: int, n_current: int, dof: int) -> float:
        return float(chdtrc(dof, value))  # = scipy.stats.chi2.sf, minus its call overhead

    def null_quantile(self, rate: float, n_reference: int, n_current: int, dof: int) -> float:
        return float(chdtri(dof, rate))
