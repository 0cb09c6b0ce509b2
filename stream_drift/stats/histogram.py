"""Mergeable histograms of counts over a fixed bin layout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from stream_drift.stats.binning import MISMATCH, MISSING, Binning, IntArray

GRIDS = ("fine", "coarse", "missing", "mismatch")
"""Count vectors a histogram offers a statistic (see :meth:`Histogram.grid_counts`)."""


class Histogram:
    """Counts per bin plus the counts of missing and mismatched values, over one :class:`Binning`.

    A *missing* value is absent, null or NaN (or ±inf); a *mismatched* one is of the wrong
    kind for the series (a string in a numeric series, see :data:`~stream_drift.stats.binning.
    MISMATCH`). Neither is binned: the drift statistics see the bins only, the data-quality
    statistics (:mod:`stream_drift.stats.quality`) the two counts. Counts add, so histograms
    built on different workers, partitions or time steps merge exactly; a sliding window
    subtracts the step it evicts.

    Parameters
    ----------
    binning
        The bin layout (shared, not copied).
    counts
        Initial counts per fine bin; zeros when omitted.
    missing
        Initial count of missing values.
    mismatched
        Initial count of values of the wrong kind.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> b = NumericBinning([0.0, 1.0])
    >>> h = Histogram(b).add([-5.0, 0.5, 0.7, 3.0, None, "forty"])
    >>> h.counts.tolist(), h.missing, h.mismatched, h.n, h.total
    ([1, 2, 1], 1, 1, 4, 6)
    >>> h.merge(Histogram(b).add([0.1])).counts.tolist()
    [1, 3, 1]
    >>> Histogram.from_dict(h.to_dict(), b) == h
    True
    """

    __slots__ = ("binning", "counts", "mismatched", "missing")

    def __init__(
        self,
        binning: Binning,
        counts: Iterable[int] | None = None,
        missing: int = 0,
        mismatched: int = 0,
    ) -> None:
        self.binning = binning
        self.counts: IntArray = (
            np.zeros(binning.n_bins, dtype=np.int64)
            if counts is None
            else np.array(counts, dtype=np.int64)
        )
        if self.counts.shape != (binning.n_bins,):
            raise ValueError(
                f"counts has {self.counts.size} bins, the binning has {binning.n_bins}"
            )
        if missing < 0 or mismatched < 0 or np.any(self.counts < 0):
            raise ValueError("counts must be non-negative")
        self.missing = int(missing)
        self.mismatched = int(mismatched)

    @property
    def n(self) -> int:
        """Binned observations (neither missing nor mismatched)."""
        return int(self.counts.sum())

    @property
    def total(self) -> int:
        """All observations, missing and mismatched included."""
        return self.n + self.missing + self.mismatched

    @property
    def missing_ratio(self) -> float:
        """Share of observations that were missing: absent, null or NaN (0 when empty)."""
        total = self.total
        return self.missing / total if total else 0.0

    @property
    def mismatch_ratio(self) -> float:
        """Share of observations of the wrong kind for the series (0 when empty)."""
        total = self.total
        return self.mismatched / total if total else 0.0

    def grid_counts(self, grid: str) -> IntArray:
        """The count vector a statistic on ``grid`` reads.

        ``"fine"`` and ``"coarse"`` are the binning's grids (binned values only);
        ``"missing"`` and ``"mismatch"`` are ``[others, flagged]`` over every observation,
        the flagged ones being the missing or the mismatched values.

        Examples
        --------
        >>> from stream_drift.stats.binning import CategoricalBinning
        >>> h = Histogram(CategoricalBinning(["a"]), [5, 1], missing=3, mismatched=1)
        >>> h.grid_counts("missing").tolist(), h.grid_counts("mismatch").tolist()
        ([7, 3], [9, 1])
        """
        if grid == "fine":
            return self.counts
        if grid == "coarse":
            return self.coarse_counts()
        if grid == "missing":
            return np.array([self.total - self.missing, self.missing], dtype=np.int64)
        if grid == "mismatch":
            return np.array([self.total - self.mismatched, self.mismatched], dtype=np.int64)
        raise ValueError(f"unknown grid {grid!r}: expected one of {', '.join(GRIDS)}")

    def add(self, values: Iterable[Any]) -> Histogram:
        """Bin a batch of raw values and count them (vectorised); returns ``self``."""
        return self.add_indices(self.binning.assign(values))

    def add_indices(self, indices: IntArray) -> Histogram:
        """Count a batch of bin indices from :meth:`Binning.assign`; returns ``self``.

        Raises
        ------
        ValueError
            On an index that is neither a bin, ``MISSING`` nor ``MISMATCH`` (nothing counted).
        """
        idx = np.asarray(indices, dtype=np.int64)
        present = idx >= 0
        missing = int(np.count_nonzero(idx == MISSING))
        mismatched = int(np.count_nonzero(idx == MISMATCH))
        if missing + mismatched + int(np.count_nonzero(present)) != idx.size:
            raise ValueError("bin indices must be bins, MISSING or MISMATCH")
        binned = np.bincount(idx[present], minlength=self.binning.n_bins)
        if binned.size != self.binning.n_bins:
            raise ValueError(f"bin index beyond the binning's {self.binning.n_bins} bins")
        self.counts += binned
        self.missing += missing
        self.mismatched += mismatched
        return self

    def _check_compatible(self, other: Histogram) -> None:
        if other.binning is not self.binning and other.binning != self.binning:
            raise ValueError("histograms over different binnings cannot be combined")

    def merge(self, other: Histogram) -> Histogram:
        """A new histogram holding both sets of counts."""
        self._check_compatible(other)
        return Histogram(
            self.binning,
            self.counts + other.counts,
            self.missing + other.missing,
            self.mismatched + other.mismatched,
        )

    def merge_in(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts into this histogram in place; returns ``self``."""
        self._check_compatible(other)
        self.counts += other.counts
        self.missing += other.missing
        self.mismatched += other.mismatched
        return self

    def subtract(self, other: Histogram) -> Histogram:
        """Remove ``other``'s counts in place (window eviction); returns ``self``.

        Raises
        ------
        ValueError
            If ``other`` holds counts this histogram does not have.
        """
        self._check_compatible(other)
        if (
            np.any(other.counts > self.counts)
            or other.missing > self.missing
            or other.mismatched > self.mismatched
        ):
            raise ValueError("cannot subtract counts that were never added")
        self.counts -= other.counts
        self.missing -= other.missing
        self.mismatched -= other.mismatched
        return self

    def copy(self) -> Histogram:
        return Histogram(self.binning, self.counts, self.missing, self.mismatched)

    def coarse_counts(self) -> IntArray:
        """Counts over the binning's coarse grid."""
        return self.binning.coarsen(self.counts)

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON-ready form: only non-empty bins are written, and ``mismatched`` only
        when non-zero (so a histogram without mismatches serialises as it always did).

        Examples
        --------
        >>> from stream_drift.stats.binning import CategoricalBinning
        >>> Histogram(CategoricalBinning(["a", "b"]), [0, 7, 0], missing=2).to_dict()
        {'n_bins': 3, 'missing': 2, 'bins': [1], 'counts': [7]}
        >>> Histogram(CategoricalBinning(["a"]), [1, 0], mismatched=4).to_dict()
        {'n_bins': 2, 'missing': 0, 'bins': [0], 'counts': [1], 'mismatched': 4}
        """
        nz = np.flatnonzero(self.counts)
        out: dict[str, Any] = {
            "n_bins": self.binning.n_bins,
            "missing": self.missing,
            "bins": nz.tolist(),
            "counts": self.counts[nz].tolist(),
        }
        if self.mismatched:
            out["mismatched"] = self.mismatched
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], binning: Binning) -> Histogram:
        """Inverse of :meth:`to_dict` for the given binning (``missing`` and ``mismatched``
        default to 0: dicts written before ``mismatched`` existed load unchanged)."""
        if int(data["n_bins"]) != binning.n_bins:
            raise ValueError(
                f"serialised histogram has {data['n_bins']} bins, the binning has {binning.n_bins}"
            )
        counts = np.zeros(binning.n_bins, dtype=np.int64)
        counts[np.asarray(data["bins"], dtype=np.int64)] = np.asarray(data["counts"], np.int64)
        return cls(binning, counts, int(data.get("missing", 0)), int(data.get("mismatched", 0)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Histogram)
            and self.missing == other.missing
            and self.mismatched == other.mismatched
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Histogram(n={self.n}, missing={self.missing}, mismatched={self.mismatched}, "
            f"bins={self.binning.n_bins})"
        )
