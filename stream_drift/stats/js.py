"""Jensen–Shannon distance."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from stream_drift.stats.base import smoothed_proportions
from stream_drift.stats.divergence import ChiSquareNullDivergence


class JSDistance(ChiSquareNullDivergence):
    """Jensen–Shannon distance in bits: ``sqrt(½ KL(r‖m) + ½ KL(c‖m))``, ``m = (r + c)/2``.

    Symmetric and bounded in [0, 1]: the bounded companion of PSI and KL. With no drift the
    squared distance ≈ (1/(8 ln 2))·(1/n + 1/m)·χ²(B−1). A drift at or above 0.15 is critical.

    Examples
    --------
    Hand-worked on disjoint supports (smoothing aside) the distance is 1; on 50/50 vs 90/10:
    m = (0.7, 0.3); ½[0.5·log2(0.5/0.7) + 0.5·log2(0.5/0.3)] + ½[0.9·log2(0.9/0.7)
    + 0.1·log2(0.1/0.3)] = 0.1468, whose square root is 0.383.

    >>> round(JSDistance().value([50_000, 50_000], [90_000, 10_000]), 3)
    0.383
    """

    name = "js"
    null_scale = 1.0 / (8.0 * math.log(2.0))
    critical_value = 0.15
    default_min_effect = 0.09

    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        r, c = smoothed_proportions(reference, current)
        m = 0.5 * (r + c)
        divergence = 0.5 * np.sum(r * np.log2(r / m)) + 0.5 * np.sum(c * np.log2(c / m))
        return float(math.sqrt(max(float(divergence), 0.0)))

    def to_quadratic(self, value: float) -> float:
        return value * value

    def from_quadratic(self, quadratic: float) -> float:
        return math.sqrt(quadratic)
