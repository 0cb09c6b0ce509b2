"""Shared null distribution of the binned divergences (PSI, KL, JS)."""

from __future__ import annotations

from typing import ClassVar

from scipy.special import chdtrc, chdtri

from stream_drift.stats.base import Statistic


class ChiSquareNullDivergence(Statistic):
    """A divergence whose quadratic form is, with no drift, ≈ ``scale · (1/n + 1/m) · χ²(B−1)``.

    For two samples of sizes ``n`` (current) and ``m`` (reference) from one distribution over
    ``B`` bins, each proportion difference has variance ``p (1/n + 1/m)``, and to second order
    PSI ≈ Σ (c−r)²/r, KL ≈ ½ Σ (c−r)²/r and JS ≈ ⅛ Σ (c−r)²/r (nats). Subclasses give the scale
    and how their value maps to the quadratic form (JS *distance* is the square root of the
    divergence).
    """

    null_scale: ClassVar[float] = 1.0

    def to_quadratic(self, value: float) -> float:
        return value

    def from_quadratic(self, quadratic: float) -> float:
        return quadratic

    def _unit(self, n_reference: int, n_current: int) -> float:
        return self.null_scale * (1.0 / n_current + 1.0 / n_reference)

    def p_value(self, value: float, n_reference: int, n_current: int, dof: int) -> float:
        # chdtrc/chdtri are what scipy.stats.chi2.sf/isf compute, without their ~100 µs of
        # argument handling per call (this runs for every feature at every window step).
        return float(chdtrc(dof, self.to_quadratic(value) / self._unit(n_reference, n_current)))

    def null_quantile(self, rate: float, n_reference: int, n_current: int, dof: int) -> float:
        quadratic = float(chdtri(dof, rate)) * self._unit(n_reference, n_current)
        return self.from_quadratic(quadratic)
