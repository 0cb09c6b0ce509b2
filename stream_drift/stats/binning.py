"""Bin layouts learned from a reference sample.

Two layouts share one interface (:class:`Binning`): :class:`NumericBinning` cuts the real
line at reference quantiles, with open tails, and :class:`CategoricalBinning` keeps the
reference's most frequent categories plus an "unseen" bucket. Both map a batch of raw values
to bin indices in one vectorised call; missing values (None, NaN, ±inf, wrong type) get
index ``MISSING`` and are counted apart, never binned.

Each layout has a *fine* grid (KS works on it) and a *coarse* grid derived from it by
merging adjacent fine bins (PSI, KL, JS and chi-square work on it), so one fine histogram
serves every statistic.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

MISSING = -1
"""Bin index given to a missing value."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

Kind = Literal["numeric", "categorical"]


@runtime_checkable
class Binning(Protocol):
    """What every bin layout offers."""

    kind: Kind

    @property
    def n_bins(self) -> int: ...

    @property
    def n_coarse(self) -> int: ...

    @property
    def coarse_map(self) -> IntArray: ...

    def assign(self, values: Iterable[Any]) -> IntArray: ...

    def labels(self) -> list[str]: ...

    def coarse_labels(self) -> list[str]: ...

    def coarsen(self, counts: npt.ArrayLike) -> IntArray: ...

    def to_dict(self) -> dict[str, Any]: ...


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _interval_labels(edges: Sequence[float]) -> list[str]:
    if len(edges) == 0:
        return ["(-inf, +inf)"]
    labels = [f"(-inf, {_fmt(edges[0])})"]
    labels += [f"[{_fmt(a)}, {_fmt(b)})" for a, b in itertools.pairwise(edges)]
    labels.append(f"[{_fmt(edges[-1])}, +inf)")
    return labels


def _to_float_array(values: Iterable[Any]) -> FloatArray:
    """Floats, with None and anything non-numeric turned into NaN (counted as missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(np.float64, copy=False)
    seq = values if isinstance(values, list | tuple) else list(values)
    # numpy would parse "1.5" and turn True into 1.0, so a batch holding a string or a bool
    # skips the fast path: a value's bin must not depend on the rest of its batch.
    if not any(issubclass(t, str | bytes | bool | np.bool_) for t in set(map(type, seq))):
        try:
            arr = np.asarray(seq, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        else:
            if arr.ndim == 1:
                return arr
    # A stray string or bool in a numeric feature is a missing value, not a crash.
    return np.fromiter(
        (
            float(v)
            if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            else math.nan
            for v in seq
        ),
        dtype=np.float64,
        count=len(seq),
    )


class NumericBinning:
    """Quantile bins with open tails for a numeric series.

    Bin ``0`` is ``(-inf, edges[0])``, bin ``i`` is ``[edges[i-1], edges[i])`` and the last bin
    is ``[edges[-1], +inf)``. NaN, ±inf and None are missing.

    Parameters
    ----------
    edges
        Strictly increasing, finite interior cut points of the fine grid.
    coarse_edges
        A subset of ``edges`` cutting the coarse grid; ``None`` makes coarse equal fine.

    Examples
    --------
    >>> b = NumericBinning.fit([1.0, 2, 3, 4, 5, 6, 7, 8], n_bins=4, n_coarse=2)
    >>> b.edges.tolist(), b.coarse_edges.tolist()
    ([3.0, 5.0, 7.0], [5.0])
    >>> b.assign([0.5, 3.0, 6.9, 100, None, float("nan")]).tolist()
    [0, 1, 2, 3, -1, -1]
    >>> b.labels()
    ['(-inf, 3)', '[3, 5)', '[5, 7)', '[7, +inf)']
    >>> b.coarsen([1, 2, 3, 4]).tolist()
    [3, 7]
    """

    kind: Kind = "numeric"

    def __init__(self, edges: Sequence[float], coarse_edges: Sequence[float] | None = None):
        self.edges: FloatArray = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or not np.all(np.isfinite(self.edges)):
            raise ValueError("edges must be a flat sequence of finite numbers")
        if np.any(np.diff(self.edges) <= 0):
            raise ValueError("edges must be strictly increasing")
        self.coarse_edges: FloatArray = (
            self.edges.copy() if coarse_edges is None else np.asarray(coarse_edges, np.float64)
        )
        if not np.all(np.isin(self.coarse_edges, self.edges)):
            raise ValueError("coarse_edges must be a subset of edges")
        if np.any(np.diff(self.coarse_edges) <= 0):
            raise ValueError("coarse_edges must be strictly increasing")
        lower = np.concatenate(([-np.inf], self.edges))
        self._coarse_map: IntArray = np.searchsorted(self.coarse_edges, lower, side="right").astype(
            np.int64
        )

    @classmethod
    def fit(cls, sample: Iterable[Any], n_bins: int = 100, n_coarse: int = 10) -> NumericBinning:
        """Learn quantile edges from a reference sample.

        Edges are reference values (``higher`` quantiles), de-duplicated, and none sits
        at or below the minimum, so every bin holds at least one reference value even on
        heavily tied or discrete data. Coarse edges are the fine edges closest (in reference
        cumulative proportion) to the ``n_coarse``-quantiles.

        Examples
        --------
        >>> NumericBinning.fit([0, 0, 0, 0, 1, 1, 2], n_bins=10).edges.tolist()
        [1.0, 2.0]
        """
        if n_bins < 1 or n_coarse < 1:
            raise ValueError("n_bins and n_coarse must be >= 1")
        x = _to_float_array(sample)
        x = np.sort(x[np.isfinite(x)])
        if x.size == 0:
            return cls([])
        qs = np.quantile(x, np.arange(1, n_bins) / n_bins, method="higher")
        edges = np.unique(qs)
        edges = edges[edges > x[0]]
        if edges.size == 0:
            return cls([])
        # Reference proportion strictly below each edge: the CDF the coarse cut is chosen on.
        below = np.searchsorted(x, edges, side="left") / x.size
        targets = np.arange(1, n_coarse) / n_coarse
        picks = np.unique(np.abs(below[None, :] - targets[:, None]).argmin(axis=1))
        return cls(edges, edges[picks])

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1)

    @property
    def n_coarse(self) -> int:
        return int(self.coarse_edges.size + 1)

    @property
    def coarse_map(self) -> IntArray:
        """Coarse bin index of every fine bin."""
        return self._coarse_map

    def assign(self, values: Iterable[Any]) -> IntArray:
        """Fine bin index of every value, ``MISSING`` for missing ones (vectorised)."""
        x = _to_float_array(values)
        idx = np.searchsorted(self.edges, x, side="right").astype(np.int64)
        idx[~np.isfinite(x)] = MISSING
        return idx

    def coarsen(self, counts: npt.ArrayLike) -> IntArray:
        """Fine counts summed into coarse bins."""
        c = np.asarray(counts, dtype=np.int64)
        return np.bincount(self._coarse_map, weights=c, minlength=self.n_coarse).astype(np.int64)

    def labels(self) -> list[str]:
        return _interval_labels(self.edges.tolist())

    def coarse_labels(self) -> list[str]:
        return _interval_labels(self.coarse_edges.tolist())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "coarse_edges": self.coarse_edges.tolist(),
        }

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NumericBinning)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.coarse_edges, other.coarse_edges)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NumericBinning(n_bins={self.n_bins}, n_coarse={self.n_coarse})"


UNSEEN = "__unseen__"
"""Label of the bucket for categories the reference never saw (or cut by top-K)."""


class CategoricalBinning:
    """A vocabulary of reference categories plus one "unseen" bucket.

    Values are compared as strings (``True`` becomes ``"true"``, ``3`` and ``3.0`` become
    ``"3"``); None and NaN are missing. The coarse grid is the fine grid.

    Parameters
    ----------
    categories
        The vocabulary, in bin order; the unseen bucket comes after it.

    Examples
    --------
    >>> b = CategoricalBinning.fit(["DE", "DE", "FR", "US", "DE", "FR"], top_k=2)
    >>> b.categories
    ('DE', 'FR')
    >>> b.assign(["FR", "US", None, "DE", True]).tolist()
    [1, 2, -1, 0, 2]
    >>> b.labels()
    ['DE', 'FR', '__unseen__']
    """

    kind: Kind = "categorical"

    def __init__(self, categories: Sequence[str]):
        self.categories: tuple[str, ...] = tuple(str(c) for c in categories)
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be unique")
        self._index: dict[str, int] = {c: i for i, c in enumerate(self.categories)}
        self._coarse_map: IntArray = np.arange(self.n_bins, dtype=np.int64)

    @staticmethod
    def normalise(value: Any) -> str | None:
        """The string a raw value is binned as, or None when missing."""
        if value is None:
            return None
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        if isinstance(value, float | np.floating):
            if not math.isfinite(value):
                return None
            # CSV readers turn integer codes into floats; 3.0 and 3 must be one category.
            if float(value).is_integer():
                return str(int(value))
        return str(value)

    @classmethod
    def fit(cls, sample: Iterable[Any], top_k: int = 50) -> CategoricalBinning:
        """Keep the ``top_k`` most frequent categories (ties broken by name)."""
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        counts = Counter(s for s in map(cls.normalise, sample) if s is not None)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return cls([c for c, _ in ranked])

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    @property
    def n_coarse(self) -> int:
        return self.n_bins

    @property
    def coarse_map(self) -> IntArray:
        return self._coarse_map

    @property
    def unseen_index(self) -> int:
        return len(self.categories)

    def assign(self, values: Iterable[Any]) -> IntArray:
        """Bin index of every value: its category, the unseen bucket, or ``MISSING``."""
        get = self._index.get
        unseen = self.unseen_index
        out: list[int] = []
        append = out.append
        for v in values:
            if isinstance(v, str):
                append(get(v, unseen))
                continue
            s = self.normalise(v)
            append(MISSING if s is None else get(s, unseen))
        return np.asarray(out, dtype=np.int64)

    def coarsen(self, counts: npt.ArrayLike) -> IntArray:
        return np.asarray(counts, dtype=np.int64).copy()

    def labels(self) -> list[str]:
        return [*self.categories, UNSEEN]

    def coarse_labels(self) -> list[str]:
        return self.labels()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "categories": list(self.categories)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalBinning) and self.categories == other.categories

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CategoricalBinning(n_categories={len(self.categories)})"


def binning_from_dict(data: Mapping[str, Any]) -> NumericBinning | CategoricalBinning:
    """Rebuild a layout from :meth:`Binning.to_dict` output.

    Examples
    --------
    >>> b = NumericBinning([1.0, 2.0, 3.0], [2.0])
    >>> binning_from_dict(b.to_dict()) == b
    True
    """
    kind = data.get("kind")
    if kind == "numeric":
        return NumericBinning(data["edges"], data.get("coarse_edges"))
    if kind == "categorical":
        return CategoricalBinning(data["categories"])
    raise ValueError(f"unknown binning kind {kind!r}: expected 'numeric' or 'categorical'")
