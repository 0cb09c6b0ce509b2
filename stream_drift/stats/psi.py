"""Population Stability Index."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream_drift.stats.base import smoothed_proportions
from stream_drift.stats.divergence import ChiSquareNullDivergence


class PSI(ChiSquareNullDivergence):
    """Population Stability Index, ``Σ (c_i − r_i) · ln(c_i / r_i)`` over coarse bins.

    Proportions are smoothed (:data:`~stream_drift.stats.base.PSEUDO_COUNT`). Usual reading:
    below 0.1 no change, 0.1–0.2 moderate, above 0.2 major; a drift at or above
    ``critical`` (0.2) is critical, a smaller one a warning. With no drift,
    PSI ≈ (1/n + 1/m)·χ²(B−1), which sets the false-alarm-rate threshold.

    Examples
    --------
    Hand-worked: reference 50/50 and current 90/10 with 100,000 values each (smoothing is
    negligible): 0.4·ln(0.9/0.5) + (−0.4)·ln(0.1/0.5) = 0.2351 + 0.6438 = 0.879.

    >>> round(PSI().value([50_000, 50_000], [90_000, 10_000]), 3)
    0.879
    >>> round(PSI().null_quantile(0.001, 100_000, 200, dof=9), 3)
    0.14
    >>> round(PSI().threshold_for(100_000, 200, dof=9), 3)  # default rate 0.0005
    0.15
    """

    name = "psi"
    critical_value = 0.2
    default_min_effect = 0.05

    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        r, c = smoothed_proportions(reference, current)
        return float(np.sum((c - r) * np.log(c / r)))
