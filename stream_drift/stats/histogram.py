"""Mergeable histograms of counts over a fixed bin layout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from stream_drift.stats.binning import MISSING, Binning, IntArray


class Histogram:
    """Counts per bin plus a count of missing values, over one :class:`Binning`.

    Counts add, so histograms built on different workers, partitions or time steps merge
    exactly; a sliding window subtracts the step it evicts.

    Parameters
    ----------
    binning
        The bin layout (shared, not copied).
    counts
        Initial counts per fine bin; zeros when omitted.
    missing
        Initial count of missing values.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> b = NumericBinning([0.0, 1.0])
    >>> h = Histogram(b).add([-5.0, 0.5, 0.7, 3.0, None])
    >>> h.counts.tolist(), h.missing, h.n
    ([1, 2, 1], 1, 4)
    >>> h.merge(Histogram(b).add([0.1])).counts.tolist()
    [1, 3, 1]
    >>> Histogram.from_dict(h.to_dict(), b) == h
    True
    """

    __slots__ = ("binning", "counts", "missing")

    def __init__(
        self, binning: Binning, counts: Iterable[int] | None = None, missing: int = 0
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
        if missing < 0 or np.any(self.counts < 0):
            raise ValueError("counts must be non-negative")
        self.missing = int(missing)

    @property
    def n(self) -> int:
        """Non-missing observations."""
        return int(self.counts.sum())

    @property
    def total(self) -> int:
        """All observations, missing included."""
        return self.n + self.missing

    @property
    def missing_ratio(self) -> float:
        """Share of observations that were missing (0 when empty)."""
        total = self.total
        return self.missing / total if total else 0.0

    def add(self, values: Iterable[Any]) -> Histogram:
        """Bin a batch of raw values and count them (vectorised); returns ``self``."""
        return self.add_indices(self.binning.assign(values))

    def add_indices(self, indices: IntArray) -> Histogram:
        """Count a batch of bin indices from :meth:`Binning.assign`; returns ``self``."""
        idx = np.asarray(indices, dtype=np.int64)
        present = idx != MISSING
        self.missing += int(idx.size - np.count_nonzero(present))
        self.counts += np.bincount(idx[present], minlength=self.binning.n_bins)
        return self

    def _check_compatible(self, other: Histogram) -> None:
        if other.binning is not self.binning and other.binning != self.binning:
            raise ValueError("histograms over different binnings cannot be combined")

    def merge(self, other: Histogram) -> Histogram:
        """A new histogram holding both sets of counts."""
        self._check_compatible(other)
        return Histogram(self.binning, self.counts + other.counts, self.missing + other.missing)

    def merge_in(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts into this histogram in place; returns ``self``."""
        self._check_compatible(other)
        self.counts += other.counts
        self.missing += other.missing
        return self

    def subtract(self, other: Histogram) -> Histogram:
        """Remove ``other``'s counts in place (window eviction); returns ``self``.

        Raises
        ------
        ValueError
            If ``other`` holds counts this histogram does not have.
        """
        self._check_compatible(other)
        if np.any(other.counts > self.counts) or other.missing > self.missing:
            raise ValueError("cannot subtract counts that were never added")
        self.counts -= other.counts
        self.missing -= other.missing
        return self

    def copy(self) -> Histogram:
        return Histogram(self.binning, self.counts, self.missing)

    def coarse_counts(self) -> IntArray:
        """Counts over the binning's coarse grid."""
        return self.binning.coarsen(self.counts)

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON-ready form: only non-empty bins are written.

        Examples
        --------
        >>> from stream_drift.stats.binning import CategoricalBinning
        >>> Histogram(CategoricalBinning(["a", "b"]), [0, 7, 0], missing=2).to_dict()
        {'n_bins': 3, 'missing': 2, 'bins': [1], 'counts': [7]}
        """
        nz = np.flatnonzero(self.counts)
        return {
            "n_bins": self.binning.n_bins,
            "missing": self.missing,
            "bins": nz.tolist(),
            "counts": self.counts[nz].tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], binning: Binning) -> Histogram:
        """Inverse of :meth:`to_dict` for the given binning."""
        if int(data["n_bins"]) != binning.n_bins:
            raise ValueError(
                f"serialised histogram has {data['n_bins']} bins, the binning has {binning.n_bins}"
            )
        counts = np.zeros(binning.n_bins, dtype=np.int64)
        counts[np.asarray(data["bins"], dtype=np.int64)] = np.asarray(data["counts"], np.int64)
        return cls(binning, counts, int(data.get("missing", 0)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Histogram)
            and self.missing == other.missing
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Histogram(n={self.n}, missing={self.missing}, bins={self.binning.n_bins})"
