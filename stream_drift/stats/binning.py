"""Bin layouts learned from a reference sample.

Two layouts share one interface (:class:`Binning`): :class:`NumericBinning` cuts the real
line at reference quantiles, with open tails, and :class:`CategoricalBinning` keeps the
reference's most frequent categories plus an "unseen" bucket. Both map a batch of raw values
to bin indices in one vectorised call. Two kinds of unusable value are counted apart, never
binned: a *missing* value (None, NaN, ±inf) gets index ``MISSING``, a value of the *wrong
kind* for the series (a string or bool in a numeric series, a container in any series) gets
index ``MISMATCH``. An upstream schema change shows as a mismatch rate, not as missingness.

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

MISMATCH = -2
"""Bin index given to a value of the wrong kind for its series (a type mismatch)."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

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
    """Interval labels; a bin ``[a, nextafter(a))`` holds only ``a`` and reads ``[a, a]``, and
    the bin after it reads ``(a, …``.

    Examples
    --------
    >>> _interval_labels([0.0, 1.0])
    ['(-inf, 0)', '[0, 1)', '[1, +inf)']
    >>> _interval_labels([5.0, math.nextafter(5.0, math.inf)])
    ['(-inf, 5)', '[5, 5]', '(5, +inf)']
    """
    bounds = [-math.inf, *edges, math.inf]
    labels = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if math.isfinite(a) and b == math.nextafter(a, math.inf):
            labels.append(f"[{_fmt(a)}, {_fmt(a)}]")
            continue
        prev = bounds[i - 1] if i > 0 else -math.inf
        if not math.isfinite(a):
            left = "(-inf"
        elif math.isfinite(prev) and a == math.nextafter(prev, math.inf):
            left = f"({_fmt(prev)}"
        else:
            left = f"[{_fmt(a)}"
        labels.append(f"{left}, {_fmt(b) + ')' if math.isfinite(b) else '+inf)'}")
    return labels


def _is_number(value: Any) -> bool:
    """A number of a numeric series: int, float or a numpy number, never a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


_NUMBER_TYPES = (int, float, np.integer, np.floating, type(None))


def _float_of(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range: a number, but no finite value
        return math.inf if value > 0 else -math.inf


def _numbers(values: Iterable[Any]) -> tuple[FloatArray, BoolArray]:
    """Floats of a batch, and which values were of the wrong kind for a numeric series.

    Numbers (int, float, numpy numbers; not bools) become floats and None becomes NaN
    (missing). Anything else, a string (even ``"12.5"``), a bool or a container, becomes NaN
    *and* is flagged as a type mismatch.

    Examples
    --------
    >>> x, wrong = _numbers([1, None, "12.5", True, 2.5])
    >>> x.tolist(), wrong.tolist()
    ([1.0, nan, nan, nan, 2.5], [False, False, True, True, False])
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        x = values.astype(np.float64, copy=False)
        return x, np.zeros(x.shape, dtype=np.bool_)
    seq = values if isinstance(values, list | tuple) else list(values)
    # numpy would parse "1.5" and turn True into 1.0, so only a batch of plain numbers and
    # None takes the fast path: a value's bin must not depend on the rest of its batch.
    types = set(map(type, seq))
    if all(issubclass(t, _NUMBER_TYPES) and not issubclass(t, bool) for t in types):
        try:
            arr = np.asarray(seq, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            if arr.ndim == 1:
                return arr, np.zeros(arr.shape, dtype=np.bool_)
    # A stray string or bool in a numeric feature is a type mismatch, not a crash.
    wrong = np.fromiter(
        (v is not None and not _is_number(v) for v in seq), dtype=np.bool_, count=len(seq)
    )
    x = np.fromiter(
        (_float_of(v) if _is_number(v) else math.nan for v in seq),
        dtype=np.float64,
        count=len(seq),
    )
    return x, wrong


def _to_float_array(values: Iterable[Any]) -> FloatArray:
    """Floats, with None and anything non-numeric turned into NaN (see :func:`_numbers`)."""
    return _numbers(values)[0]


def finite_values(values: Iterable[Any]) -> FloatArray:
    """The values a numeric binning counts (finite numbers, as floats), sorted.

    Examples
    --------
    >>> finite_values([3, None, "x", 1.5, float("inf"), True]).tolist()
    [1.5, 3.0]
    """
    x = _to_float_array(values)
    return np.sort(x[np.isfinite(x)])


def _has_repeat(sorted_values: FloatArray) -> bool:
    return bool(np.any(sorted_values[1:] == sorted_values[:-1]))


def separating_edges(x: FloatArray, inner: FloatArray) -> FloatArray:
    """Edges that give values outside the reference range bins of their own, when needed.

    ``x`` is the sorted finite reference and ``inner`` the quantile edges (all above
    ``x[0]``). The lowest bin ``(-inf, inner[0])`` also takes every value below the reference
    range; when it holds a repeated reference value (a point mass: a constant or flag column,
    an integer code, a zero-inflated feature), a value of that mass moving below the range would
    not change any count. An edge at ``x[0]`` then splits off ``(-inf, x[0])``, and likewise an
    edge just above ``x[-1]`` splits off ``(x[-1], +inf)`` at the top. A constant column (one
    distinct value, even seen once) gets both. Both bins are empty in the reference.

    Examples
    --------
    >>> separating_edges(np.array([5.0, 5.0, 5.0]), np.array([])).tolist()
    [5.0, 5.000000000000001]
    >>> separating_edges(np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 2.0])).tolist()
    [0.0]
    >>> separating_edges(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.2, 0.3])).tolist()
    []
    """
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    constant = bool(x[0] == x[-1])
    first_end = int(np.searchsorted(x, inner[0], side="left")) if inner.size else x.size
    last_start = int(np.searchsorted(x, inner[-1], side="left")) if inner.size else 0
    out: list[float] = []
    if constant or _has_repeat(x[:first_end]):
        out.append(float(x[0]))
    above = math.nextafter(float(x[-1]), math.inf)
    # Above the largest float there is nothing finite left to keep apart.
    if (constant or _has_repeat(x[last_start:])) and math.isfinite(above):
        out.append(above)
    return np.asarray(out, dtype=np.float64)


class NumericBinning:
    """Quantile bins with open tails for a numeric series.

    Bin ``0`` is ``(-inf, edges[0])``, bin ``i`` is ``[edges[i-1], edges[i])`` and the last bin
    is ``[edges[-1], +inf)``. NaN, ±inf and None are missing (``MISSING``); anything that is
    not a number (a string, even ``"12.5"``, a bool, a container) is a type mismatch
    (``MISMATCH``). A bin ``[v, nextafter(v))`` holds the single value ``v`` and is labelled
    ``[v, v]``; the bin after it reads ``(v, …``.

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
    >>> b.assign([0.5, 3.0, 6.9, 100, None, float("nan"), "12.5", True]).tolist()
    [0, 1, 2, 3, -1, -1, -2, -2]
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

        Quantile edges are reference values (``higher`` quantiles), de-duplicated, and none
        sits at or below the minimum, so every bin between them holds at least one reference
        value even on heavily tied or discrete data. Coarse edges are the quantile edges
        closest (in reference cumulative proportion) to the ``n_coarse``-quantiles.

        When the lowest (highest) bin holds a repeated reference value, or the sample has a
        single distinct value, :func:`separating_edges` adds an edge at the minimum (just
        above the maximum) so values outside the reference range land in a bin of their own,
        empty in the reference, on the fine and the coarse grid alike (which may so have up to
        two bins more than asked). A constant ``5.0`` gets ``(-inf, 5)``, ``[5, 5]``,
        ``(5, +inf)``: a move to ``500`` shows on every statistic.

        Examples
        --------
        >>> NumericBinning.fit([0, 0, 0, 0, 1, 1, 2], n_bins=10).edges.tolist()
        [0.0, 1.0, 2.0]
        >>> NumericBinning.fit([5.0] * 20).labels()
        ['(-inf, 5)', '[5, 5]', '(5, +inf)']
        """
        if n_bins < 1 or n_coarse < 1:
            raise ValueError("n_bins and n_coarse must be >= 1")
        x = finite_values(sample)
        if x.size == 0:
            return cls([])
        qs = np.quantile(x, np.arange(1, n_bins) / n_bins, method="higher")
        edges = np.unique(qs)
        edges = edges[edges > x[0]]
        picks = edges[:0]
        if edges.size:
            # Reference proportion strictly below each edge: the CDF the coarse cut is chosen on.
            below = np.searchsorted(x, edges, side="left") / x.size
            targets = np.arange(1, n_coarse) / n_coarse
            picks = edges[np.unique(np.abs(below[None, :] - targets[:, None]).argmin(axis=1))]
        outer = separating_edges(x, edges)
        return cls(np.union1d(edges, outer).tolist(), np.union1d(picks, outer).tolist())

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
        """Fine bin index of every value (vectorised): ``MISSING`` for None, NaN and ±inf,
        ``MISMATCH`` for anything that is not a number."""
        x, wrong = _numbers(values)
        idx = np.searchsorted(self.edges, x, side="right").astype(np.int64)
        idx[~np.isfinite(x)] = MISSING
        idx[wrong] = MISMATCH
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


_CONTAINERS = (Mapping, list, tuple, set, frozenset, np.ndarray)


def _is_container(value: Any) -> bool:
    """A value that holds several values: never one category (a type mismatch)."""
    return isinstance(value, _CONTAINERS)


UNSEEN = "__unseen__"
"""Label of the bucket for categories the reference never saw (or cut by top-K)."""


class CategoricalBinning:
    """A vocabulary of reference categories plus one "unseen" bucket.

    Values are compared as strings (``True`` becomes ``"true"``, ``3`` and ``3.0`` become
    ``"3"``); None, NaN and ±inf are missing. Every scalar is a category: a number or a bool
    where the reference holds strings is a category like any other (most likely an unseen
    one, which PSI and chi-square see), since categorical codes are often numbers. Only a
    value that cannot be one category, a container (a JSON object or array: dict, list,
    tuple, set, ndarray), is a type mismatch (``MISMATCH``). The coarse grid is the fine grid.

    Parameters
    ----------
    categories
        The vocabulary, in bin order; the unseen bucket comes after it.

    Examples
    --------
    >>> b = CategoricalBinning.fit(["DE", "DE", "FR", "US", "DE", "FR"], top_k=2)
    >>> b.categories
    ('DE', 'FR')
    >>> b.assign(["FR", "US", None, "DE", True, ["DE"]]).tolist()
    [1, 2, -1, 0, 2, -2]
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
        counts = Counter(
            s
            for s in (None if _is_container(v) else cls.normalise(v) for v in sample)
            if s is not None
        )
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
        """Bin index of every value: its category, the unseen bucket, ``MISSING`` or
        ``MISMATCH`` (a container)."""
        get = self._index.get
        unseen = self.unseen_index
        out: list[int] = []
        append = out.append
        for v in values:
            if isinstance(v, str):
                append(get(v, unseen))
                continue
            if _is_container(v):
                append(MISMATCH)
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
