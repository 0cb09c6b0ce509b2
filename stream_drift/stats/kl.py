"""Kullback–Leibler divergence of the current window from the reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream_drift.stats.base import smoothed_proportions
from stream_drift.stats.divergence import ChiSquareNullDivergence


class KL(ChiSquareNullDivergence):
    """``KL(reference ‖ current) = Σ r_i · ln(r_i / c_i)`` in nats over coarse bins.

    Asymmetric and unbounded; smoothing keeps it finite. With no drift,
    KL ≈ ½ (1/n + 1/m)·χ²(B−1). A drift at or above 0.1 nats is critical (≈ PSI 0.2).

    Examples
    --------
    Hand-worked: 0.5·ln(0.5/0.9) + 0.5·ln(0.5/0.1) = −0.2939 + 0.8047 = 0.511.

    >>> round(KL().value([50_000, 50_000], [90_000, 10_000]), 3)
    0.511
    """

    name = "kl"
    null_scale = 0.5
    critical_value = 0.1
    default_min_effect = 0.025

    def value(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        r, c = smoothed_proportions(reference, current)
        return float(np.sum(r * np.log(r / c)))
